import { type HubEndpoint, hubEndpoints, hubWireComponents } from '@chit/sdk';
import { z } from 'zod';

// The OpenAPI document served at GET /docs, generated from the SDK's table of endpoints (hubEndpoints):
// every schema is the one the hub decodes with and the hub client parses with, as JSON Schema of its
// wire (input) form. test/metrics.test.ts checks that every route the app serves is in it.

type Schema = Record<string, unknown>;

const toJson = (schema: z.ZodType): Schema => {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Schema;
  return json;
};

const pascal = (id: string) => id[0]!.toUpperCase() + id.slice(1);

/** Registers the shared components, then each endpoint's body and answer under its operation id. */
function components(): { schemas: Record<string, Schema>; refs: Map<z.ZodType, Schema> } {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(hubWireComponents)) registry.add(schema, { id });
  const endpoints: HubEndpoint[] = Object.values(hubEndpoints);
  for (const endpoint of endpoints) {
    const name = pascal(endpoint.operationId);
    if (endpoint.body && !registry.has(endpoint.body)) registry.add(endpoint.body, { id: `${name}Request` });
    if (!endpoint.text && !registry.has(endpoint.answer)) registry.add(endpoint.answer, { id: `${name}Answer` });
  }
  const generated = z.toJSONSchema(registry, {
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }).schemas as Record<string, Schema>;
  const schemas: Record<string, Schema> = {};
  for (const [id, { $schema: _, $id: __, ...schema }] of Object.entries(generated)) schemas[id] = schema;
  const refs = new Map<z.ZodType, Schema>();
  for (const endpoint of endpoints) {
    for (const schema of [endpoint.body, endpoint.answer]) {
      const id = schema && registry.get(schema)?.id;
      if (schema && id) refs.set(schema, { $ref: `#/components/schemas/${id}` });
    }
  }
  return { schemas, refs };
}

const json = (schema: Schema) => ({ content: { 'application/json': { schema } } });
const errorRef = { $ref: '#/components/schemas/Error' };

function parameters(endpoint: HubEndpoint): Schema[] | undefined {
  const of = (where: 'path' | 'query', object: z.ZodObject | undefined) =>
    Object.entries(object?.shape ?? {}).map(([name, schema]) => ({
      name,
      in: where,
      // A query parameter with a default (bucket=day, format=json) may be left out.
      required: !(schema as z.ZodType).safeParse(undefined).success,
      schema: toJson(schema as z.ZodType),
    }));
  const list = [...of('path', endpoint.params), ...of('query', endpoint.query)];
  return list.length > 0 ? list : undefined;
}

/**
 * An operation: its answer on success and the error statuses it may give (besides 500, and those of the
 * HTTP layer: 413 and 415 with a body, 414 with a path parameter, 429 unless the route is `unlimited`).
 */
function operation(endpoint: HubEndpoint, refs: Map<z.ZodType, Schema>): Schema {
  const httpLayer = [
    ...(endpoint.body ? [400, 413, 415] : []),
    ...(endpoint.params ? [400, 414] : []),
    ...(endpoint.unlimited ? [] : [429]),
  ];
  const errors = [...new Set([...endpoint.errors, ...httpLayer, 500])].sort((a, b) => a - b);
  const answer = endpoint.text
    ? { content: { 'text/plain': { schema: toJson(endpoint.answer) } } }
    : json(refs.get(endpoint.answer)!);
  const success = [endpoint.status, ...(endpoint.alsoStatus ? [endpoint.alsoStatus] : [])];
  return {
    operationId: endpoint.operationId,
    summary: endpoint.summary,
    // A signed request carries its signature in its body; the history answers a signed-in session.
    security: endpoint.session ? [{ session: [] }] : [],
    parameters: parameters(endpoint),
    requestBody: endpoint.body && { required: true, ...json(refs.get(endpoint.body)!) },
    responses: {
      ...Object.fromEntries(success.map((status) => [status, { description: `${status}`, ...answer }])),
      ...Object.fromEntries(
        errors
          .filter((status) => !success.includes(status))
          .map((status) => [status, { description: 'error', ...json(errorRef) }]),
      ),
    },
  };
}

/** Builds the OpenAPI 3.1 document of the hub API from the SDK's endpoints. */
export function buildOpenApi(): Schema {
  const { schemas, refs } = components();
  const paths: Record<string, Record<string, Schema>> = {};
  for (const endpoint of Object.values(hubEndpoints) as HubEndpoint[]) {
    paths[endpoint.path] = { ...paths[endpoint.path], [endpoint.method]: operation(endpoint, refs) };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Chit hub',
      version: '0.1.0',
      description:
        'Amounts, timestamps and nonces are decimal strings. Every request is idempotent. See docs/protocol.md.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'the hub this document is served by' }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        session: {
          type: 'http',
          scheme: 'bearer',
          description:
            'The token of POST /v1/auth/session (Sign-In with Ethereum, EIP-4361), for the history endpoints',
        },
      },
    },
  };
}

export const OPENAPI = buildOpenApi();
