import { encodeMessage, type InstantExitRequestBody } from '@chit/sdk';
import { Body, Controller, HttpCode, Inject, Post } from '@nestjs/common';
import { wire } from '../../api/wire.pipe';
import { InstantExitService } from './instant-exit.service';

/** Instant-exit co-signatures. */
@Controller('v1')
export class InstantExitController {
  constructor(@Inject(InstantExitService) private readonly instantExits: InstantExitService) {}

  @Post('exits/instant')
  @HttpCode(200)
  async instantExit(@Body(wire('instantExitRequest')) request: InstantExitRequestBody) {
    return encodeMessage(await this.instantExits.cosign(request));
  }
}
