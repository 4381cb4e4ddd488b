import 'reflect-metadata';
import { STATUS_CODES } from 'node:http';
import { type DynamicModule, Inject, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import Redis from 'ioredis';
import { LoggerModule, Logger as PinoLogger } from 'nestjs-pino';
import { Pool } from 'pg';
import { getAddress } from 'viem';
import { BooksController, ExchangeController, HealthController } from './api/controllers';
import { registerCors } from './api/cors';
import { clientErrorAnswer, type ErrorAnswer, ErrorFilter, HTTP_LIMITS, httpLayerAnswer } from './api/error.filter';
import { MetricsController } from './api/metrics.controller';
import { OpenApiController } from './api/openapi.controller';
import { registerRateLimit } from './api/rate-limit';
import { AuthController } from './auth/auth.controller';
import { AuthRepository } from './auth/auth.repository';
import { AuthService } from './auth/auth.service';
import { SessionTokens } from './auth/session-token';
import { BooksService } from './books/books.service';
import { ChainService } from './chain/chain.service';
import { ChainEvents } from './chain/chain-events';
import { ChainFollower } from './chain/follower/follower.service';
import { HubStatusWatch } from './chain/hub-status';
import { briefRpcError, rpcUnreachable } from './chain/rpc-errors';
import type { HubConfig } from './config/config';
import { exchangeCrypto } from './crypto/exchange-crypto.pool';
import { OperatorSigner } from './crypto/operator-signer';
import { DashboardController } from './dashboard/dashboard.controller';
import { migrate } from './db/migrator';
import { PlannerStatistics } from './db/planner-statistics';
import { DeploymentService, databaseName } from './deployment/deployment.service';
import { ExchangeService } from './exchange/exchange.service';
import { HealthService } from './health/health.service';
import { OutageLog } from './health/outage-log';
import { HistoryController } from './history/history.controller';
import { HistoryRepository } from './history/history.repository';
import { HistoryService } from './history/history.service';
import { MoneySampler } from './history/money-sampler';
import { InfoService } from './info/info.service';
import { useJsonLogs } from './logging/json-logger';
import { MetricsRepository } from './metrics/metrics.repository';
import { MetricsService } from './metrics/metrics.service';
import { BooksRepository } from './repositories/books.repository';
import { ChainRepository } from './repositories/chain.repository';
import { DeploymentRepository } from './repositories/deployment.repository';
import { ExchangeRepository, RevealRepository } from './repositories/exchange.repository';
import { InstantExitController } from './settlement/instant-exit/instant-exit.controller';
import { InstantExitService } from './settlement/instant-exit/instant-exit.service';
import { RelayRequestService } from './settlement/requests/relay-request.service';
import { SettlementController } from './settlement/requests/settlement.controller';
import { SettlementRequestService } from './settlement/requests/settlement-request.service';
import { SettlementPipeline } from './settlement/settlement.pipeline';
import { X402Controller } from './x402/x402.controller';
import { X402Repository } from './x402/x402.repository';
import { X402Service } from './x402/x402.service';

export const VERSION = '0.1.0';

/** Every long-lived object of one hub process, built once at start (the composition root). */
export interface HubContext {
  config: HubConfig;
  chainId: number;
  pool: Pool;
  redis: Redis;
  chain: ChainService;
  /** What the chain follower applied; the settlement pipeline listens. */
  events: ChainEvents;
  /** Applies confirmed Hub and Registry events to the books; started by `startHub`. */
  follower: ChainFollower;
  /** The hub's on-chain status, polled for the exchange (no promise from a closing hub); started by `startHub`. */
  hubStatus: HubStatusWatch;
  signer: OperatorSigner;
  exchanges: ExchangeService;
  books: BooksService;
  info: InfoService;
  health: HealthService;
  /** Settlement queues, workers (started by `startHub`), relayer and instant exits. */
  settlement: SettlementPipeline;
  /** Prometheus metrics (`GET /metrics`), in a registry of this hub's own. */
  metrics: MetricsService;
  /** Sign-In with Ethereum sessions for the history endpoints. */
  auth: AuthService;
  /** Earnings, spending and the hub's figures over time. */
  history: HistoryService;
  /** Samples the hub's money into its history once a minute; started by `startHub` with the follower. */
  moneySampler: MoneySampler;
  /** Analyzes the tables whose planner statistics went stale; started by `startHub`, in every role. */
  statistics: PlannerStatistics;
}

/** Connects to Postgres, Redis and the chain, checks the operator key, migrates, and builds the services. */
export async function createContext(config: HubConfig): Promise<HubContext> {
  useJsonLogs(config.LOG_LEVEL);
  const pool = new Pool({ connectionString: config.DATABASE_URL, max: config.DB_POOL_SIZE });
  pool.on('error', (error) => new Logger('Postgres').warn(`idle client: ${error.message}`));
  // A checked-out client whose connection drops (Postgres restarted) emits 'error' too: without a
  // listener that kills the process. The query in flight fails with the same error, and the pool
  // discards the client when it is released.
  pool.on('connect', (client) => client.on('error', () => {}));
  const redis = new Redis(config.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: null });
  // ioredis reports every failed reconnection: the log says when Redis goes and comes back, and reminds once a minute.
  const redisOutage = new OutageLog(new Logger('Redis'), 'Redis');
  let redisError: string | undefined;
  redis.on('error', (error) => {
    redisError = error.message;
    redisOutage.failed(error.message);
  });
  redis.on('ready', () => redisOutage.recovered());
  // Checksummed once here: the hub's address is in every hub promise and in /v1/info.
  const chain = new ChainService(config.RPC_URL, getAddress(config.HUB_ADDRESS));
  const signer = new OperatorSigner(config.OPERATOR_KEY as `0x${string}`);
  try {
    const chainId = await chain.chainId(config.CHAIN_ID).catch((error: unknown) => {
      throw rpcUnreachable(error) ? noRpc(config.RPC_URL, error) : error;
    });
    const onChain = await chain.hubInfo().catch(async (error: unknown) => {
      throw rpcUnreachable(error) ? noRpc(config.RPC_URL, error) : await notAHub(chain, chainId, error);
    });
    if (onChain.operator.toLowerCase() !== signer.address.toLowerCase()) {
      throw new Error(
        `OPERATOR_KEY is the key of ${signer.address}, but the hub ${config.HUB_ADDRESS} is run by ${onChain.operator}`,
      );
    }
    const cursorId = `${chainId}:${onChain.hub.toLowerCase()}`;
    // Before the migrations: a database of another deployment is refused as it is.
    const deployment = new DeploymentService(chain.client, new DeploymentRepository(pool), {
      chainId,
      hub: onChain.hub,
      registry: onChain.registry,
      cursorId,
      startBlock: BigInt(config.FOLLOWER_START_BLOCK),
      database: databaseName(config.DATABASE_URL),
    });
    const unrecorded = await deployment.check();
    await migrate(pool);
    if (unrecorded) await deployment.record(unrecorded);
    // ioredis rejects with "Connection is closed."; why it closed came as an 'error' event.
    await redis.connect().catch((error: Error) => {
      throw noRedis(config.REDIS_URL, redisError ?? error.message);
    });
    const scope = { hub: onChain.hub, chainId };
    const reveals = new RevealRepository(pool);
    const events = new ChainEvents();
    const settlement = SettlementPipeline.create({
      config,
      scope,
      pool,
      redis,
      chain,
      events,
      signer,
      redisOutage,
      onConfirmed: (kind, seconds) => metrics.settled(kind, seconds),
    });
    const metricsRepository = new MetricsRepository(pool);
    const metrics = new MetricsService({
      repository: metricsRepository,
      chain,
      exchanges: () => exchanges,
      followerLag: () => follower.lag(),
      relayer: getAddress(settlement.sender.address),
      jobCounts: (states) => settlement.queues.jobCounts(states),
    });
    const hubStatus = new HubStatusWatch(chain, config.FOLLOWER_POLL_MS);
    const exchanges = new ExchangeService(
      scope,
      new ExchangeRepository(pool),
      reveals,
      signer,
      {
        maxBatch: config.EXCHANGE_MAX_BATCH,
        concurrency: config.EXCHANGE_CONCURRENCY,
        memoryRows: config.EXCHANGE_MEMORY_ROWS,
        crypto: exchangeCrypto(signer.privateKey, config.HUB_ROLE === 'worker' ? 0 : config.CRYPTO_THREADS),
      },
      (outcome, seconds, code) => metrics.exchanged(outcome, seconds, code),
      () => hubStatus.status,
    );
    const follower = new ChainFollower(chain.client, new ChainRepository(pool), events, {
      hub: onChain.hub,
      registry: onChain.registry,
      cursorId,
      confirmations: config.CONFIRMATIONS,
      startBlock: BigInt(config.FOLLOWER_START_BLOCK),
      pollMs: config.FOLLOWER_POLL_MS,
    });
    const history = new HistoryService(
      new HistoryRepository(pool),
      async () => (await chain.hubInfo()).fee,
      async () => {
        const [{ stake, freeFunds }, liabilities] = await Promise.all([
          chain.hubInfo(),
          metricsRepository.unsettledLiabilities(),
        ]);
        return { stake, freeFunds, liabilities };
      },
    );
    return {
      config,
      chainId,
      pool,
      redis,
      chain,
      events,
      follower,
      hubStatus,
      signer,
      exchanges,
      books: new BooksService(scope, new BooksRepository(pool), reveals, signer),
      info: new InfoService(chainId, chain, signer, VERSION),
      health: new HealthService(
        pool,
        redis,
        chain,
        config.HUB_ROLE === 'api' ? undefined : () => follower.health(config.FOLLOWER_STALL_MS),
      ),
      settlement,
      metrics,
      auth: new AuthService(
        new AuthRepository(pool),
        new SessionTokens(signer.privateKey),
        chainId,
        signer.address,
        config.AUTH_DOMAINS,
      ),
      history,
      moneySampler: new MoneySampler(history),
      statistics: new PlannerStatistics(pool),
    };
  } catch (error) {
    await pool.end().catch(() => {});
    redis.disconnect();
    throw error;
  }
}

/** RPC_URL gave no answer at start: which node, why, and what to do (never the URL's path: it may hold an API key). */
function noRpc(rpcUrl: string, error: unknown): Error {
  const { protocol, host } = new URL(rpcUrl);
  return new Error(
    `RPC_URL: no answer from the chain RPC at ${protocol}//${host} (${briefRpcError(error, rpcUrl)}): start the node, or point RPC_URL at one that runs`,
  );
}

function noRedis(redisUrl: string, reason: string): Error {
  const { protocol, host } = new URL(redisUrl);
  return new Error(
    `REDIS_URL: no answer from Redis at ${protocol}//${host} (${reason}): start Redis, or point REDIS_URL at one that runs`,
  );
}

/** The hub's state could not be read at HUB_ADDRESS: no contract there, or one that is not a hub. */
async function notAHub(chain: ChainService, chainId: number, error: unknown): Promise<Error> {
  // viem answers undefined for an address without code.
  const code = await chain.client.getCode({ address: chain.hub }).catch(() => null);
  if (code === null) return error as Error;
  const what =
    code === undefined || code === '0x'
      ? `there is no contract at ${chain.hub} on chain ${chainId}`
      : `the contract at ${chain.hub} on chain ${chainId} is not a Chit hub`;
  return new Error(
    `HUB_ADDRESS: ${what}: set it to the address of the Hub contract this service runs (deployments/${chainId}.json, hub.address)`,
  );
}

const CONTEXT = Symbol('HubContext');

class Shutdown implements OnApplicationShutdown {
  constructor(@Inject(CONTEXT) private readonly context: HubContext) {}

  async onApplicationShutdown(): Promise<void> {
    this.context.hubStatus.stop();
    await this.context.moneySampler.stop();
    await this.context.statistics.stop();
    await this.context.follower.stop();
    await this.context.settlement.close().catch(() => {});
    await this.context.exchanges.close().catch(() => {});
    await this.context.pool.end().catch(() => {});
    await this.context.redis.quit().catch(() => {});
  }
}

@Module({})
class HubModule {
  static register(context: HubContext): DynamicModule {
    return {
      module: HubModule,
      imports: [
        LoggerModule.forRoot({
          pinoHttp: { level: context.config.LOG_LEVEL, autoLogging: false, quietReqLogger: true },
          // Structured logs without a per-request logger: errors are logged where they are handled,
          // and a child logger per request costs more than the exchange's own bookkeeping.
          forRoutes: [],
        }),
      ],
      controllers:
        context.config.HUB_ROLE === 'worker'
          ? [HealthController, MetricsController]
          : [
              ExchangeController,
              BooksController,
              HealthController,
              SettlementController,
              InstantExitController,
              MetricsController,
              OpenApiController,
              X402Controller,
              AuthController,
              HistoryController,
              DashboardController,
            ],
      providers: [
        { provide: CONTEXT, useValue: context },
        { provide: ExchangeService, useValue: context.exchanges },
        { provide: BooksService, useValue: context.books },
        { provide: InfoService, useValue: context.info },
        { provide: HealthService, useValue: context.health },
        { provide: SettlementRequestService, useValue: context.settlement.requests },
        { provide: RelayRequestService, useValue: context.settlement.relays },
        { provide: InstantExitService, useValue: context.settlement.instantExits },
        { provide: MetricsService, useValue: context.metrics },
        { provide: AuthService, useValue: context.auth },
        { provide: HistoryService, useValue: context.history },
        {
          provide: X402Service,
          useValue: new X402Service(
            { hub: context.chain.hub, chainId: context.chainId },
            context.exchanges,
            new X402Repository(context.pool),
            context.chain,
            context.signer,
            (code) => context.metrics.errored(code),
          ),
        },
        Shutdown,
      ],
    };
  }
}

/** An error answer written straight to the socket, for what Node's HTTP parser refused. */
function rawAnswer({ status, body }: ErrorAnswer): string {
  const json = JSON.stringify(body);
  return [
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(json)}`,
    'connection: close',
    '',
    json,
  ].join('\r\n');
}

/** A running hub: its URL and how to stop it (drains requests, then closes connections). */
export interface RunningHub {
  url: string;
  context: HubContext;
  app: NestFastifyApplication;
  close(): Promise<void>;
}

/**
 * Starts a hub with `config` and listens on HOST:PORT (PORT 0 picks a free port). HUB_ROLE chooses
 * the parts: the API, the follower and settlement workers, or both.
 */
export async function startHub(config: HubConfig): Promise<RunningHub> {
  const context = await createContext(config);
  const errored = (code: string) => context.metrics.errored(code);
  // What Fastify and Node's HTTP parser refuse before a route runs answers like every error:
  // { code, message, details }, counted, never repeating the request.
  const app = await NestFactory.create<NestFastifyApplication>(
    HubModule.register(context),
    new FastifyAdapter({
      bodyLimit: HTTP_LIMITS.bodyBytes,
      trustProxy: config.TRUST_PROXY,
      routerOptions: { maxParamLength: HTTP_LIMITS.paramLength },
      frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
        const answer = httpLayerAnswer(error.statusCode ?? 400, error.code);
        errored(answer.body.code);
        void reply.status(answer.status).send(answer.body);
      },
      clientErrorHandler: (error, socket) => {
        if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || socket.destroyed) return;
        const answer = clientErrorAnswer(error);
        errored(answer.body.code);
        if (!socket.writable) {
          socket.destroy();
          return;
        }
        socket.end(rawAnswer(answer));
        // The rest of the request is never read: do not wait for the client to close.
        setTimeout(() => socket.destroy(), 1_000).unref();
      },
    }),
    // JSON bodies only (Fastify's parser): Nest's would also take form-encoded ones.
    { bufferLogs: true, bodyParser: false },
  );
  app.useLogger(app.get(PinoLogger));
  app.useGlobalFilters(new ErrorFilter(errored, context.chain));
  // On SIGTERM the server stops taking connections and answers what is in flight. Meanwhile every
  // answer closes its connection: an idle keep-alive connection would otherwise hold server.close()
  // open for the keep-alive timeout. Then the hooks close the pipeline, Postgres and Redis, and the
  // process exits 0.
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeContentTypeParser('text/plain');
  // Before the routes are added (at listen): CORS headers go on every answer, limits on every route.
  await registerCors(app, config);
  await registerRateLimit(app, config);
  let closing = false;
  fastify.addHook('preClose', async () => {
    closing = true;
  });
  fastify.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  app.enableShutdownHooks([], { useProcessExit: true });
  if (config.HUB_ROLE !== 'worker') await context.hubStatus.start();
  await app.listen(config.PORT, config.HOST);
  context.statistics.start();
  if (config.HUB_ROLE !== 'api') {
    context.follower.start();
    context.moneySampler.start();
    await context.settlement.start();
  }
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  return {
    url: `http://${config.HOST}:${port}`,
    context,
    app,
    close: () => app.close(),
  };
}
