import { Controller, Get, Header, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { MetricsService } from '../metrics/metrics.service';
import { OPENAPI } from './openapi';

/** Prometheus metrics and the OpenAPI document. */
@Controller()
export class MetricsController {
  constructor(@Inject(MetricsService) private readonly metrics: MetricsService) {}

  @Get('metrics')
  async scrape(@Res() reply: FastifyReply) {
    await reply.header('content-type', this.metrics.contentType).send(await this.metrics.text());
  }

  @Get('docs')
  @Header('cache-control', 'no-cache')
  docs() {
    return OPENAPI;
  }
}
