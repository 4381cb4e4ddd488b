import { Command, Option } from 'commander';
import { balanceCommand } from './commands/balance.js';
import { beneficiaryCommand } from './commands/beneficiary.js';
import { configCommand } from './commands/config.js';
import { depositCommand } from './commands/deposit.js';
import { earningsCommand } from './commands/earnings.js';
import { exitCommand } from './commands/exit.js';
import { hubsCommand } from './commands/hubs.js';
import { identityCommand } from './commands/identity.js';
import { payCommand } from './commands/pay.js';
import { promiseCommand } from './commands/promise.js';
import { provideCommand } from './commands/provide.js';
import { settleCommand } from './commands/settle.js';
import { storeCommand } from './commands/store.js';
import { connectCommand, provideProxyCommand } from './commands/tunnel.js';
import { withdrawCommand } from './commands/withdraw.js';

const ENVIRONMENT = `
Configuration (flags override the environment, which overrides the config file):
  --rpc-url     CHIT_RPC_URL     "rpcUrl"     JSON-RPC endpoint of the hub's chain
  --keystore    CHIT_KEYSTORE    "keystore"   encrypted keystore (default: keystore.json beside the config file)
  --hub-url     CHIT_HUB_URL     "hubUrl"     the hub's service; the hub address is read from its /v1/info
  --hub         CHIT_HUB         "hub"        the Hub contract, when no hub URL is set
  --registry    CHIT_REGISTRY    "registry"   the Registry (default: the hub's)
  --store       CHIT_STORE       "store"      the provider's store: its ProviderLedger's FileStore directory
                                              (default: store/ beside the config file)
                CHIT_PASSWORD                 keystore password for scripts (else asked on the terminal)
  --config <file>   default $XDG_CONFIG_HOME/chit/config.json or ~/.config/chit/config.json

Amounts are in tokens with decimals (12.5). --json prints one JSON document on stdout; progress and
errors go to stderr. Exit status: 0 on success, 1 on failure.`;

/**
 * The `chit` command line: every command, with the global configuration options.
 *
 * @example
 * await createProgram().parseAsync(['node', 'chit', 'balance', '--json']);
 */
export function createProgram(): Command {
  const program = new Command('chit')
    .description("Chit's command line, for providers and consumers of a Chit payment hub")
    .version('0.1.0')
    .addOption(new Option('--rpc-url <url>', 'JSON-RPC endpoint of the chain'))
    .addOption(new Option('--keystore <path>', 'encrypted JSON keystore of the identity'))
    .addOption(new Option('--hub-url <url>', "the hub's service URL"))
    .addOption(new Option('--hub <address>', 'the Hub contract'))
    .addOption(new Option('--registry <address>', 'the Registry contract'))
    .addOption(new Option('--store <dir>', "the provider's store (its ProviderLedger's FileStore directory)"))
    .addOption(new Option('--config <file>', 'config file (JSON)'))
    .option('--json', 'print the result as JSON')
    .addHelpText('after', ENVIRONMENT);

  for (const command of [
    hubsCommand(),
    identityCommand(),
    depositCommand(),
    balanceCommand(),
    earningsCommand(),
    exitCommand(),
    settleCommand(),
    withdrawCommand(),
    storeCommand(),
    beneficiaryCommand(),
    promiseCommand(),
    provideCommand().addCommand(provideProxyCommand()),
    payCommand(),
    connectCommand(),
    configCommand(),
  ]) {
    program.addCommand(command);
  }
  configure(program);
  return program;
}

/** Every command's help lists the global options, and a usage error points at --help. */
function configure(command: Command): void {
  command.configureHelp({ showGlobalOptions: true }).showHelpAfterError(`(run \`${path(command)} --help\` for usage)`);
  for (const sub of command.commands) configure(sub);
}

function path(command: Command): string {
  return command.parent ? `${path(command.parent)} ${command.name()}` : command.name();
}
