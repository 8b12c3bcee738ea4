import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { data as Data } from '@actions/expressions';
import { parse } from 'yaml';
import { runProcess } from './cli.js';

/**
 * Runs a generated workflow's jobs the way a GitHub-hosted runner would, on this machine: each
 * `${{ }}` is evaluated by GitHub's own expression evaluator (@actions/expressions) against the
 * contexts a test gives, and each `run:` script goes to `bash --noprofile --norc -eo pipefail`
 * (what `shell: bash` means) with the step's environment and a GITHUB_OUTPUT file.
 */
export interface Contexts {
  github: Record<string, unknown>;
  inputs?: Record<string, unknown>;
  vars?: Record<string, string>;
  secrets?: Record<string, string>;
  matrix?: Record<string, unknown>;
  needs?: Record<string, { outputs: Record<string, string>; result?: string }>;
  steps?: Record<string, { outputs: Record<string, string> }>;
}

interface Step {
  id?: string;
  name?: string;
  env?: Record<string, string>;
  run: string;
}

interface Job {
  name?: string;
  env?: Record<string, string>;
  needs?: string;
  if?: string;
  outputs?: Record<string, string>;
  strategy?: { 'fail-fast'?: boolean; matrix: Record<string, string> };
  concurrency?: { group: string; 'cancel-in-progress'?: boolean };
  steps: Step[];
}

export interface Workflow {
  on: {
    schedule?: { cron: string }[];
    workflow_dispatch: { inputs: Record<string, { type: string; options?: string[]; default?: unknown }> };
  };
  env?: Record<string, string>;
  defaults?: { run?: { shell?: string } };
  jobs: Record<string, Job>;
}

export function parseWorkflowText(text: string): Workflow {
  return parse(text) as Workflow;
}

const CONTEXT_NAMES = ['github', 'inputs', 'vars', 'secrets', 'matrix', 'needs', 'steps', 'env'];

// Imported on first use: a static import of this ESM-only package makes the test file load as
// ESM, with its own copy of the test harness's module state.
let expressions: typeof import('@actions/expressions') | undefined;

async function evaluateOne(expression: string, contexts: Contexts & { env?: Record<string, string> }) {
  expressions ??= await import('@actions/expressions');
  const { data, Evaluator, Lexer, Parser } = expressions;
  const lexed = new Lexer(expression).lex();
  const parsed = new Parser(lexed.tokens, CONTEXT_NAMES, []).parse();
  const all = { inputs: {}, vars: {}, secrets: {}, matrix: {}, needs: {}, steps: {}, env: {}, ...contexts };
  const context = JSON.parse(JSON.stringify(all), data.reviver) as Data.Dictionary;
  return { value: new Evaluator(parsed, context).evaluate(), replacer: data.replacer };
}

/** The value of a template: a lone `${{ expr }}` keeps its type; otherwise a string, as GitHub does. */
export async function evaluate(
  template: string,
  contexts: Contexts & { env?: Record<string, string> },
): Promise<unknown> {
  const lone = /^\$\{\{(.*)\}\}$/s.exec(template.trim());
  if (lone && !lone[1]!.includes('}}')) {
    const { value, replacer } = await evaluateOne(lone[1]!, contexts);
    return JSON.parse(JSON.stringify(value, replacer));
  }
  let out = '';
  let last = 0;
  for (const match of template.matchAll(/\$\{\{(.*?)\}\}/gs)) {
    out += template.slice(last, match.index) + (await evaluateOne(match[1]!, contexts)).value.coerceString();
    last = match.index! + match[0].length;
  }
  return out + template.slice(last);
}

async function evaluateEnv(
  env: Record<string, string> | undefined,
  contexts: Contexts & { env?: Record<string, string> },
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env ?? {})) {
    const v = await evaluate(String(value), contexts);
    out[key] = typeof v === 'string' ? v : v === null ? '' : String(v);
  }
  return out;
}

interface StepResult {
  name: string;
  code: number | null;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  summary: string;
}

export interface JobResult {
  ok: boolean;
  steps: StepResult[];
  outputs: Record<string, string>;
  log: string;
}

/** Reads `name=value` lines (and `name<<EOF` blocks) the way the runner reads GITHUB_OUTPUT. */
function readOutputs(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2]!, i + 1);
      outputs[heredoc[1]!] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (line.includes('=')) {
      outputs[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
    }
  }
  return outputs;
}

async function runScript(
  script: string,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<Omit<StepResult, 'name'>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-step-'));
  try {
    const file = path.join(dir, 'step.sh');
    await writeFile(file, script);
    await writeFile(path.join(dir, 'output'), '');
    await writeFile(path.join(dir, 'summary'), '');
    const result = await runProcess('bash', ['--noprofile', '--norc', '-eo', 'pipefail', file], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        GITHUB_OUTPUT: path.join(dir, 'output'),
        GITHUB_STEP_SUMMARY: path.join(dir, 'summary'),
        ...env,
      },
      timeoutMs,
    });
    return {
      ...result,
      outputs: readOutputs(await readFile(path.join(dir, 'output'), 'utf8')),
      summary: await readFile(path.join(dir, 'summary'), 'utf8'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Runs one job's steps in order with the contexts given (plus `runner` variables a hosted
 * runner sets), stopping at the first failing step, and evaluates the job's outputs.
 */
export async function runJob(
  workflow: Workflow,
  jobId: string,
  contexts: Contexts,
  options: { timeoutMs?: number; runnerEnv?: Record<string, string> } = {},
): Promise<JobResult> {
  const job = workflow.jobs[jobId];
  if (!job) throw new Error(`no job ${jobId}`);
  const workflowEnv = await evaluateEnv(workflow.env, contexts);
  const jobEnv = { ...workflowEnv, ...(await evaluateEnv(job.env, { ...contexts, env: workflowEnv })) };
  const steps: StepResult[] = [];
  const stepContext: Record<string, { outputs: Record<string, string> }> = {};
  let ok = true;
  for (const step of job.steps) {
    const scoped = { ...contexts, env: jobEnv, steps: stepContext };
    const env = { ...options.runnerEnv, ...jobEnv, ...(await evaluateEnv(step.env, scoped)) };
    const name = String(await evaluate(step.name ?? step.id ?? 'step', scoped));
    const result = await runScript(step.run, env, options.timeoutMs ?? 20_000);
    steps.push({ name, ...result });
    if (step.id) stepContext[step.id] = { outputs: result.outputs };
    if (result.code !== 0) {
      ok = false;
      break;
    }
  }
  const outputs = ok
    ? await evaluateEnv(job.outputs, { ...contexts, env: jobEnv, steps: stepContext })
    : ({} as Record<string, string>);
  const log = steps.map((s) => `## ${s.name} (exit ${s.code})\n${s.stdout}${s.stderr}`).join('\n');
  return { ok, steps, outputs, log };
}

/**
 * A run of the generated workflow as GitHub goes through it: the plan job, then one run job per
 * task of its matrix. A failing plan job throws, with its log.
 */
export async function runWorkflow(
  workflow: Workflow,
  contexts: Contexts,
  options: { timeoutMs?: number } = {},
): Promise<{ matrix: string[]; jobs: Record<string, JobResult> }> {
  const plan = await runJob(workflow, 'plan', contexts);
  if (!plan.ok) throw new Error(`the plan job failed:\n${plan.log}`);
  const needs = { plan: { outputs: plan.outputs, result: 'success' } };
  const matrix = (await evaluate(workflow.jobs.run!.strategy!.matrix.task!, {
    ...contexts,
    needs,
  })) as string[];
  const jobs: Record<string, JobResult> = {};
  for (const task of matrix) {
    jobs[task] = await runJob(workflow, 'run', { ...contexts, needs, matrix: { task } }, options);
  }
  return { matrix, jobs };
}

/** The github context of a run started by an event, with the fields the workflow reads. */
export function githubContext(
  event:
    | { name: 'schedule'; schedule: string }
    | { name: 'workflow_dispatch'; inputs: Record<string, unknown> },
  run: { id?: string; attempt?: string } = {},
): Record<string, unknown> {
  return {
    event_name: event.name,
    event: event.name === 'schedule' ? { schedule: event.schedule } : { inputs: event.inputs },
    run_id: run.id ?? '9876543210',
    run_attempt: run.attempt ?? '1',
    repository: 'example/app',
    api_url: 'https://api.github.com',
    token: 'ghs_not_a_real_token',
  };
}
