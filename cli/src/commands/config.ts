import { Command } from 'commander';
import type { Setting } from '../config.js';
import { type CliContext, handler } from '../context.js';

/**
 * `chit config`: the configuration in force and where each value comes from.
 *
 * @example
 * program.addCommand(configCommand());
 */
export function configCommand(): Command {
  return new Command('config')
    .description('Show the configuration in force and where each value comes from (flag, environment, file)')
    .action(handler(runConfig));
}

async function runConfig(ctx: CliContext): Promise<void> {
  const { config } = ctx;
  const entry = (setting: Setting<string> | undefined) =>
    setting ? { value: setting.value, source: setting.source } : null;
  const data = {
    configFile: { path: config.configPath, found: config.configFileFound },
    rpcUrl: entry(config.rpcUrl),
    hubUrl: entry(config.hubUrl),
    hub: entry(config.hub),
    registry: entry(config.registry),
    keystore: entry(config.keystore),
    store: entry(config.store),
    password: process.env.CHIT_PASSWORD ? 'CHIT_PASSWORD' : 'asked on the terminal',
  };
  const show = (setting: Setting<string> | undefined) =>
    setting ? `${setting.value}  (${setting.source})` : '(not set)';
  ctx.out.result(data, [
    ['Config file', `${config.configPath}${config.configFileFound ? '' : ' (none)'}`],
    ['RPC URL', show(config.rpcUrl)],
    ['Hub URL', show(config.hubUrl)],
    ['Hub', config.hub || !config.hubUrl ? show(config.hub) : '(read from the hub URL)'],
    ['Registry', show(config.registry)],
    ['Keystore', show(config.keystore)],
    ['Store', show(config.store)],
    ['Password', data.password],
  ]);
}
