// `nvmf`: an nvme-cli-like tool for NVMe over TCP, built on the host library.
// The host is this process, not the kernel, so there is no /dev/nvmeX: every
// command connects to the controller, does its work and disconnects.
//
//   nvmf discover -t tcp -a 127.0.0.1 -s 4420
//   nvmf identify -t tcp -a 127.0.0.1 -s 4420 -n nqn.2016-06.io.spdk:cnode1 -o json
//
// Exit status: 0 success, 1 NVMe or transport error (one line on stderr),
// 2 bad arguments (with the usage).

import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../util/errors.ts';
import { adminCommands } from './cli/admin-commands.ts';
import { exitWhenFlushed, isParseArgsError } from './cli/args.ts';
import { CONNECT_HELP, type Command, connectOptions, transportIdFrom, type Values } from './cli/command.ts';
import { ioCommands } from './cli/io-commands.ts';
import { resvCommands } from './cli/resv-commands.ts';

const COMMANDS: Command[] = [...adminCommands, ...ioCommands, ...resvCommands];
const ALIASES: Record<string, string> = { 'id-ctrl': 'identify' };

function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 1;
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)} ${c.summary}`);
  return [
    'usage: nvmf <command> [options]',
    '',
    'NVMe over TCP from the command line (nvme-cli habits). The host is this',
    'process: each command connects, does its work and disconnects.',
    '',
    'commands:',
    ...lines,
    '',
    "'nvmf <command> --help' shows a command's options; 'nvmf --version' the version.",
    'Exit status: 0 success, 1 NVMe or transport error, 2 bad arguments.',
    '',
  ].join('\n');
}

function commandUsage(cmd: Command): string {
  const own = Object.entries(cmd.options)
    .map(([name, o]) => {
      const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ' N' : ''}`;
      return `  ${flag.padEnd(23)}${cmd.optionHelp?.[name] ?? ''}`;
    })
    .join('\n');
  return `usage: ${cmd.help}\n\n${cmd.summary}\n\n${own ? `options:\n${own}\n\n` : ''}${CONNECT_HELP(cmd)}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(mainUsage());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS.find((c) => c.name === (ALIASES[name] ?? name));
  if (cmd === undefined) {
    process.stderr.write(`nvmf: unknown command "${name}"\n\n${mainUsage()}`);
    return 2;
  }
  let values: Values;
  try {
    values = parseArgs({
      args: rest,
      options: { ...connectOptions(cmd), ...cmd.options },
      strict: true,
      allowPositionals: false,
    }).values as Values;
  } catch (err) {
    if (!isParseArgsError(err)) throw err;
    process.stderr.write(`nvmf ${cmd.name}: ${err.message}\n\n${commandUsage(cmd)}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(commandUsage(cmd));
    return 0;
  }
  try {
    const format = values['output-format'];
    if (format !== 'normal' && format !== 'json')
      throw new UsageError(`--output-format must be normal or json, not "${format}"`);
    const trid = transportIdFrom(cmd, values);
    await cmd.run({ values, json: format === 'json', trid, out: (t) => process.stdout.write(t) });
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`nvmf ${cmd.name}: ${err.message}\n\n${commandUsage(cmd)}`);
      return 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`nvmf ${cmd.name}: ${message}\n`);
    return 1;
  }
}

function isEntryPoint(): boolean {
  if (import.meta.main) return true;
  // imported by the bin/nvmf.mjs shim (or a symlink named nvmf)
  const script = process.argv[1] ? basename(process.argv[1]) : '';
  return script === 'nvmf' || script === 'nvmf.mjs';
}

if (isEntryPoint()) {
  // `nvmf … | head`: a closed pipe ends the output quietly
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  exitWhenFlushed(await main(process.argv.slice(2)));
}
