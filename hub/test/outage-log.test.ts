import assert from 'node:assert/strict';
import { OutageLog } from '../src/health/outage-log';

// The log of a dependency's outages (Redis reports every reconnection attempt): a line when it goes,
// a line when it is back, at most one reminder a minute in between.
describe('OutageLog', () => {
  const setup = () => {
    const lines: string[] = [];
    const clock = { now: 1_000_000 };
    const log = new OutageLog(
      { warn: (message) => lines.push(`warn ${message}`), log: (message) => lines.push(`log ${message}`) },
      'Redis',
      60_000,
      () => clock.now,
    );
    return { lines, clock, log };
  };

  it('logs the first error, then nothing until a minute has passed', () => {
    const { lines, clock, log } = setup();
    for (let i = 0; i < 405; i++) {
      log.failed('connect ECONNREFUSED 127.0.0.1:6379');
      clock.now += 37; // 405 errors in 15 s
    }
    assert.deepEqual(lines, ['warn Redis is unreachable: connect ECONNREFUSED 127.0.0.1:6379']);
    assert.equal(log.down, true);
  });

  it('reminds at most once a minute while the outage lasts, counting the errors not logged', () => {
    const { lines, clock, log } = setup();
    log.failed('a');
    clock.now += 30_000;
    log.failed('b');
    clock.now += 30_000;
    log.failed('c');
    clock.now += 59_999;
    log.failed('d');
    clock.now += 1;
    log.failed('e');
    assert.deepEqual(lines, [
      'warn Redis is unreachable: a',
      'warn Redis is still unreachable after 60 s (2 errors since the last line): c',
      'warn Redis is still unreachable after 120 s (2 errors since the last line): e',
    ]);
  });

  it('logs the recovery once, and the next outage as new', () => {
    const { lines, clock, log } = setup();
    log.recovered();
    log.failed('a');
    clock.now += 4_400;
    log.recovered();
    log.recovered();
    log.failed('b');
    assert.deepEqual(lines, [
      'warn Redis is unreachable: a',
      'log Redis is reachable again after 4 s',
      'warn Redis is unreachable: b',
    ]);
    assert.equal(log.down, true);
  });
});
