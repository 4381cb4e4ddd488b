import { encodeMessage } from '@chit/sdk';
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import type { SettlementView } from '../settlement.types';
import { RelayRequestService } from './relay-request.service';
import { SettlementRequestService } from './settlement-request.service';

const accepted = ({ id, status }: SettlementView) => ({ id, status });

/** Settlement requests and their status, fee quotes and relayed Registry actions. */
@Controller('v1')
export class SettlementController {
  constructor(
    @Inject(SettlementRequestService) private readonly settlements: SettlementRequestService,
    @Inject(RelayRequestService) private readonly relays: RelayRequestService,
  ) {}

  @Get('quotes/settlement')
  async quote(@Query() query: unknown) {
    return encodeMessage(await this.settlements.quote(query));
  }

  @Get('quotes/relay')
  async relayQuote(@Query() query: unknown) {
    return encodeMessage(await this.relays.relayQuote(query));
  }

  @Post('settlements')
  @HttpCode(202)
  async request(@Body() body: unknown) {
    return accepted(await this.settlements.requestProviderSettlement(body));
  }

  @Get('settlements/:id')
  settlement(@Param('id') id: string) {
    return this.settlements.settlement(id);
  }

  @Post('relay/identities')
  @HttpCode(202)
  async relayIdentity(@Body() body: unknown) {
    return accepted(await this.relays.relayIdentity(body));
  }

  @Post('relay/beneficiaries')
  @HttpCode(202)
  async relayBeneficiary(@Body() body: unknown) {
    return accepted(await this.relays.relayBeneficiary(body));
  }
}
