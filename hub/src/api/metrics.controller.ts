import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { MetricsService } from '../metrics/metrics.service';

/** Prometheus metrics, served by every role. */
@Controller()
export class MetricsController {
  constructor(@Inject(MetricsService) private readonly metrics: MetricsService) {}

  @Get('metrics')
  async scrape(@Res() reply: FastifyReply) {
    await reply.header('content-type', this.metrics.contentType).send(await this.metrics.text());
  }
}
