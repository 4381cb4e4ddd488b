import { encodeMessage } from '@chit/sdk';
import { Body, Controller, Get, HttpCode, Inject, Post } from '@nestjs/common';
import { decodeFacilitatorRequest } from './x402.dto';
import { X402Service } from './x402.service';

/**
 * The x402 facilitator of the `chit` scheme, at `<hub URL>/x402` (what `HTTPFacilitatorClient` of
 * `@x402/core` calls). A refused payment is a 200 with its reason; a body of another shape is MALFORMED.
 */
@Controller('x402')
export class X402Controller {
  constructor(@Inject(X402Service) private readonly x402: X402Service) {}

  @Get('supported')
  supported() {
    return this.x402.supported();
  }

  @Post('verify')
  @HttpCode(200)
  verify(@Body() body: unknown) {
    return this.x402.verify(decodeFacilitatorRequest(body));
  }

  @Post('settle')
  @HttpCode(200)
  async settle(@Body() body: unknown) {
    return encodeMessage(await this.x402.settle(decodeFacilitatorRequest(body)));
  }
}
