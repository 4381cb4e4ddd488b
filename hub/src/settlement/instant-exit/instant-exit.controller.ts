import { encodeMessage } from '@chit/sdk';
import { Body, Controller, HttpCode, Inject, Post } from '@nestjs/common';
import { InstantExitService } from './instant-exit.service';

/** Instant-exit co-signatures. */
@Controller('v1')
export class InstantExitController {
  constructor(@Inject(InstantExitService) private readonly instantExits: InstantExitService) {}

  @Post('exits/instant')
  @HttpCode(200)
  async instantExit(@Body() body: unknown) {
    return encodeMessage(await this.instantExits.cosign(body));
  }
}
