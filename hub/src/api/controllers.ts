import { type ExchangeRequest, encodeMessage, type Reveal, type SignedRecoveryRequest } from '@chit/sdk';
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { BooksService } from '../books/books.service';
import { decodeAddress } from '../errors/decode-wire';
import { decodeExchangeBatch, type ExchangeBatch, ExchangeService } from '../exchange/exchange.service';
import { HealthService } from '../health/health.service';
import { InfoService } from '../info/info.service';
import { wire } from './wire.pipe';

// Controllers decode the request at the edge (the SDK's wire contract) and delegate; the services hold the rules and throw HubErrors,
// which ErrorFilter turns into statuses and codes.

@Controller('v1')
export class ExchangeController {
  constructor(@Inject(ExchangeService) private readonly exchanges: ExchangeService) {}

  @Post('exchange')
  @HttpCode(200)
  async exchange(@Body(wire('exchangeRequest')) request: ExchangeRequest) {
    return encodeMessage(await this.exchanges.exchange(request));
  }

  @Post('exchanges')
  @HttpCode(200)
  async exchangeMany(@Body({ transform: decodeExchangeBatch }) { items, sign }: ExchangeBatch) {
    return encodeMessage(await this.exchanges.exchangeMany(items, sign));
  }

  @Post('reveal')
  @HttpCode(200)
  reveal(@Body(wire('reveal')) reveal: Reveal) {
    return this.exchanges.reveal(reveal);
  }

  @Post('recovery')
  @HttpCode(200)
  async recovery(@Body(wire('recoveryRequest')) request: SignedRecoveryRequest) {
    return encodeMessage(await this.exchanges.recover(request));
  }
}

@Controller('v1')
export class BooksController {
  constructor(
    @Inject(BooksService) private readonly books: BooksService,
    @Inject(InfoService) private readonly info: InfoService,
  ) {}

  @Get('info')
  async hubInfo() {
    return encodeMessage(await this.info.info());
  }

  // The address in either form (lower case or EIP-55); the books answer it checksummed.
  @Get('consumers/:address')
  async consumer(@Param('address') address: string) {
    return encodeMessage(await this.books.consumer(decodeAddress(address, 'address')));
  }

  @Get('providers/:address')
  async provider(@Param('address') address: string) {
    return encodeMessage(await this.books.provider(decodeAddress(address, 'address')));
  }
}

@Controller()
export class HealthController {
  constructor(@Inject(HealthService) private readonly health: HealthService) {}

  @Get('health')
  alive() {
    return { status: 'ok' };
  }

  @Get('ready')
  async ready(@Res() reply: FastifyReply) {
    const { checks, reasons } = await this.health.checks();
    const ok = Object.values(checks).every(Boolean);
    const answer = { status: ok ? 'ready' : 'unavailable', checks };
    await reply.status(ok ? 200 : 503).send(Object.keys(reasons).length > 0 ? { ...answer, reasons } : answer);
  }
}
