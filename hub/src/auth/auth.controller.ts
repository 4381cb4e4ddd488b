import { sessionRequest } from '@chit/sdk';
import { Body, Controller, Get, Headers, HttpCode, Inject, Post } from '@nestjs/common';
import type { z } from 'zod';
import { decoded } from '../api/wire.pipe';
import { AuthService } from './auth.service';

/** Sign-In with Ethereum: a nonce, then a session for a signed EIP-4361 message. */
@Controller('v1/auth')
export class AuthController {
  constructor(@Inject(AuthService) private readonly auth: AuthService) {}

  @Get('nonce')
  nonce() {
    return this.auth.nonce();
  }

  // The message must name the host this request was sent to (what a browser wallet puts in it).
  @Post('session')
  @HttpCode(200)
  session(@Body(decoded(sessionRequest)) request: z.output<typeof sessionRequest>, @Headers('host') host?: string) {
    return this.auth.signIn(request, host);
  }
}
