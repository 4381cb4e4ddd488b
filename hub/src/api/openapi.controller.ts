import { Controller, Get, Header } from '@nestjs/common';
import { OPENAPI } from './openapi';

/** The OpenAPI document of the HTTP API, served where the API is (not by a worker replica). */
@Controller()
export class OpenApiController {
  @Get('docs')
  @Header('cache-control', 'no-cache')
  docs() {
    return OPENAPI;
  }
}
