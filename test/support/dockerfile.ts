/**
 * A small Dockerfile reader for the deploy tests: no Docker engine runs on these machines, so the Dockerfile is
 * checked by reading it — its instructions (continuation lines joined, comments dropped), its stages, and the rules
 * the image relies on ({@link dockerfileProblems}).
 */
import { readFileSync } from 'node:fs';

/** One instruction: its keyword (upper case), its arguments as written, and the line it starts on. */
export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** A build stage: the image it starts from, its name (`AS name`) and its instructions after FROM. */
export interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Every instruction the Dockerfile reference knows. */
export const KNOWN_INSTRUCTIONS = new Set([
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'MAINTAINER',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
]);

/** The instructions of `text`, continuation lines (a trailing `\`) joined and comment lines dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current: Instruction | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    // Docker drops comment lines even inside a continued instruction.
    if (/^\s*#/.test(line)) return;
    if (current === null) {
      if (line.trim() === '') return;
      const m = /^\s*([A-Za-z]+)(?:\s+(.*))?$/.exec(line);
      // A line that does not start with a word is no instruction: kept with a keyword no Dockerfile has.
      current = m
        ? { keyword: m[1]!.toUpperCase(), args: m[2] ?? '', line: i + 1 }
        : { keyword: `?${line}`, args: '', line: i + 1 };
    } else {
      current.args += ` ${line.trim()}`;
    }
    if (current.args.endsWith('\\')) {
      current.args = current.args.slice(0, -1).trimEnd();
    } else {
      current.args = current.args.trim();
      out.push(current);
      current = null;
    }
  });
  if (current) out.push(current);
  return out;
}

/** The stages of a parsed Dockerfile (instructions before the first FROM, such as ARG, are not in any). */
export function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const [from = '', as, name] = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      stages.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return stages;
}

/** The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD, or null for shell form or broken JSON. */
export function execForm(args: string): string[] | null {
  if (!args.startsWith('[')) return null;
  try {
    const v: unknown = JSON.parse(args);
    return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? v : null;
  } catch {
    // Not JSON: Docker would run it as a shell command — the shell form this check refuses.
    return null;
  }
}

/** The `KEY=value` pairs of the ENV instructions of `stage` (values without spaces or quotes, as this file has). */
export function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.instructions.filter((i) => i.keyword === 'ENV')) {
    for (const pair of ins.args.split(/\s+/)) {
      const eq = pair.indexOf('=');
      // The legacy `ENV KEY value` form shows up as a word without `=`.
      if (eq <= 0) env[`?${pair}`] = '';
      else env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

/** The command of the last stage's HEALTHCHECK (exec form), or null. */
export function healthcheckCommand(stage: Stage): string[] | null {
  const hc = stage.instructions.find((i) => i.keyword === 'HEALTHCHECK');
  const cmd = hc && /(?:^|\s)CMD\s+(.*)$/.exec(hc.args)?.[1];
  return cmd ? execForm(cmd) : null;
}

/**
 * What is wrong with `text` as this project's Dockerfile, empty when nothing: every instruction known; every FROM a
 * Node 20 image; `COPY --from` naming an earlier stage; in the final stage, an exec-form CMD (and ENTRYPOINT, if
 * any) with no npm or shell in between, a USER that is not root before it, and an exec-form HEALTHCHECK CMD.
 */
export function dockerfileProblems(text: string): string[] {
  const problems: string[] = [];
  const instructions = parseDockerfile(text);
  for (const ins of instructions) {
    if (!KNOWN_INSTRUCTIONS.has(ins.keyword)) problems.push(`line ${ins.line}: unknown instruction ${ins.keyword}`);
  }
  const stages = stagesOf(instructions);
  if (stages.length === 0) return [...problems, 'no FROM'];
  const names: string[] = [];
  for (const stage of stages) {
    if (!/^node:20(\.|-|$)/.test(stage.from)) problems.push(`FROM ${stage.from} is not a Node 20 image`);
    for (const ins of stage.instructions.filter((i) => i.keyword === 'COPY')) {
      const from = /--from=(\S+)/.exec(ins.args)?.[1];
      if (from !== undefined && !names.includes(from)) problems.push(`line ${ins.line}: no earlier stage ${from}`);
    }
    if (stage.name) names.push(stage.name);
  }
  const last = stages.at(-1)!.instructions;
  // The last of each counts (a later CMD or USER replaces an earlier one).
  const lastAt = (keyword: string, before = last.length) =>
    last.slice(0, before).reduce((found, i, at) => (i.keyword === keyword ? at : found), -1);
  const cmdAt = lastAt('CMD');
  if (cmdAt < 0) problems.push('no CMD in the final stage');
  for (const ins of last.filter((i) => i.keyword === 'CMD' || i.keyword === 'ENTRYPOINT')) {
    const argv = execForm(ins.args);
    if (!argv) problems.push(`line ${ins.line}: ${ins.keyword} is not in exec form (a JSON array of strings)`);
    else if (/^(npm|npx|sh|bash|\/bin\/sh)$/.test(argv[0]!)) {
      problems.push(`line ${ins.line}: ${ins.keyword} starts ${argv[0]}, which would stand between SIGTERM and node`);
    }
  }
  const userAt = lastAt('USER', cmdAt < 0 ? last.length : cmdAt);
  const user = userAt >= 0 ? last[userAt]!.args.split(':')[0] : undefined;
  if (user === undefined) problems.push('no USER before CMD in the final stage: the service would run as root');
  else if (user === 'root' || user === '0') problems.push(`USER ${user} is root`);
  if (!last.some((i) => i.keyword === 'HEALTHCHECK')) problems.push('no HEALTHCHECK in the final stage');
  else if (!healthcheckCommand(stages.at(-1)!)) problems.push('the HEALTHCHECK has no exec-form CMD');
  return problems;
}

/**
 * The V8 heap flags every shipped way of running the service passes to node (`npm start`'s script is the reference;
 * the Procfile, the Dockerfile's CMD and the systemd unit repeat them, and the deploy tests keep them in step): with
 * a cap V8 collects before its heap grows to four times what is live, which keeps a long broadcast deletion's peak
 * memory flat and low. The broadcast benchmark runs its deleting process with them too.
 */
export const HEAP_FLAGS: string[] = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }
).scripts.start
  .split(/\s+/)
  .filter((a) => a.startsWith('--max-'));
