import { encodeMessage, historyListQuery, historyQuery } from '@chit/sdk';
import { Controller, Get, Headers, Inject, Param, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import { decoded } from '../api/wire.pipe';
import { AuthService } from '../auth/auth.service';
import { decodeAddress } from '../errors/decode-wire';
import { toCsv } from './history.rules';
import { HistoryService } from './history.service';

type HistoryQuery = z.output<typeof historyQuery>;
type ListQuery = z.output<typeof historyListQuery>;

/**
 * Earnings, spending and the hub's figures over time, for the session of the identity they belong to
 * (the hub's for the operator's). `format=csv` answers a CSV file to download instead of JSON.
 */
@Controller('v1/history')
export class HistoryController {
  constructor(
    @Inject(HistoryService) private readonly history: HistoryService,
    @Inject(AuthService) private readonly auth: AuthService,
  ) {}

  @Get('providers/:address')
  async provider(
    @Param('address') path: string,
    @Query(decoded(historyQuery)) query: HistoryQuery,
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const provider = this.auth.requireIdentity(authorization, decodeAddress(path, 'address')).address;
    const answer = await this.history.provider(provider, query, query.bucket);
    if (query.format === 'csv') {
      return csv(
        reply,
        `chit-earnings-${provider}`,
        query,
        toCsv(['start', 'amount', 'hubFee', 'exchanges'], answer.buckets),
      );
    }
    return encodeMessage(answer);
  }

  @Get('providers/:address/consumers')
  async providerConsumers(
    @Param('address') path: string,
    @Query(decoded(historyListQuery)) query: ListQuery,
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const provider = this.auth.requireIdentity(authorization, decodeAddress(path, 'address')).address;
    const answer = await this.history.providerConsumers(provider, query);
    if (query.format === 'csv') {
      return csv(
        reply,
        `chit-consumers-${provider}`,
        query,
        toCsv(['consumer', 'amount', 'exchanges'], answer.consumers),
      );
    }
    return encodeMessage(answer);
  }

  @Get('providers/:address/settlements')
  async providerSettlements(
    @Param('address') path: string,
    @Query(decoded(historyListQuery)) query: ListQuery,
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const provider = this.auth.requireIdentity(authorization, decodeAddress(path, 'address')).address;
    const answer = await this.history.providerSettlements(provider, query);
    if (query.format === 'csv') {
      const rows = answer.settlements.map(({ error, ...settlement }) => ({
        ...settlement,
        errorCode: error?.code ?? null,
        error: error?.message ?? null,
      }));
      const columns = [
        'id',
        'status',
        'total',
        'amount',
        'hubFee',
        'relayerFee',
        'payout',
        'txHash',
        'gasUsed',
        'errorCode',
        'error',
        'createdAt',
        'updatedAt',
      ] as const;
      return csv(reply, `chit-settlements-${provider}`, query, toCsv(columns, rows));
    }
    return encodeMessage(answer);
  }

  @Get('consumers/:address')
  async consumer(
    @Param('address') path: string,
    @Query(decoded(historyQuery)) query: HistoryQuery,
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const consumer = this.auth.requireIdentity(authorization, decodeAddress(path, 'address')).address;
    const answer = await this.history.consumer(consumer, query, query.bucket);
    if (query.format === 'csv') {
      return csv(reply, `chit-spending-${consumer}`, query, toCsv(['start', 'amount', 'exchanges'], answer.buckets));
    }
    return encodeMessage(answer);
  }

  @Get('consumers/:address/providers')
  async consumerProviders(
    @Param('address') path: string,
    @Query(decoded(historyListQuery)) query: ListQuery,
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const consumer = this.auth.requireIdentity(authorization, decodeAddress(path, 'address')).address;
    const answer = await this.history.consumerProviders(consumer, query);
    if (query.format === 'csv') {
      return csv(
        reply,
        `chit-providers-${consumer}`,
        query,
        toCsv(['provider', 'amount', 'exchanges'], answer.providers),
      );
    }
    return encodeMessage(answer);
  }

  @Get('hub')
  async hub(
    @Query(decoded(historyQuery)) query: HistoryQuery,
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    this.auth.requireOperator(authorization);
    const answer = await this.history.hub(query, query.bucket);
    if (query.format === 'csv') {
      return csv(reply, 'chit-hub', query, toCsv(['start', 'amount', 'exchanges'], answer.buckets));
    }
    return encodeMessage(answer);
  }
}

/** Answers `body` as a CSV file named for what it holds and its range. */
function csv(reply: FastifyReply, name: string, range: { from: Date; to: Date }, body: string): string {
  const day = (at: Date) => at.toISOString().slice(0, 10);
  void reply
    .header('content-type', 'text/csv; charset=utf-8')
    .header('content-disposition', `attachment; filename="${name}-${day(range.from)}-${day(range.to)}.csv"`);
  return body;
}
