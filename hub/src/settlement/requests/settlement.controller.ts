import { encodeMessage } from '@chit/sdk';
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import {
  decodeRelayBeneficiary,
  decodeRelayIdentity,
  decodeRelayQuoteQuery,
  decodeSettlementId,
  decodeSettlementQuoteQuery,
  decodeSettlementRequest,
} from '../settlement.dto';
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
    return encodeMessage(await this.settlements.quote(decodeSettlementQuoteQuery(query)));
  }

  @Get('quotes/relay')
  async relayQuote(@Query() query: unknown) {
    return encodeMessage(await this.relays.relayQuote(decodeRelayQuoteQuery(query)));
  }

  @Post('settlements')
  @HttpCode(202)
  async request(@Body() body: unknown) {
    return accepted(await this.settlements.requestProviderSettlement(decodeSettlementRequest(body)));
  }

  @Get('settlements/:id')
  settlement(@Param('id') id: string) {
    // The id with its address in either form; the answer has the canonical id.
    return this.settlements.settlement(decodeSettlementId(id));
  }

  @Post('relay/identities')
  @HttpCode(202)
  async relayIdentity(@Body() body: unknown) {
    return accepted(await this.relays.relayIdentity(decodeRelayIdentity(body)));
  }

  @Post('relay/beneficiaries')
  @HttpCode(202)
  async relayBeneficiary(@Body() body: unknown) {
    return accepted(await this.relays.relayBeneficiary(decodeRelayBeneficiary(body)));
  }
}
