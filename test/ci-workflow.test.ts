import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from '@actions/workflow-parser';
import { expect } from 'chai';
import { parse } from 'yaml';
import { ROOT } from './support/cli.js';

const CI = path.join(ROOT, '.github/workflows/ci.yml');

interface Step {
  run?: string;
  uses?: string;
}
interface Job {
  'runs-on': string;
  steps: Step[];
  services?: Record<string, { image: string }>;
  strategy?: { matrix: Record<string, unknown[]> };
  env?: Record<string, string>;
}

/** Every error GitHub's own parser and converter find in a workflow's text. */
async function workflowErrors(content: string): Promise<string[]> {
  const parsed = parseWorkflow({ name: 'ci.yml', content }, new NoOperationTraceWriter());
  const errors = parsed.context.errors.getErrors().map((e) => e.message);
  if (!parsed.value) return [...errors, 'no workflow parsed'];
  const template = await convertWorkflowTemplate(parsed.context, parsed.value);
  return [...errors, ...(template.errors ?? []).map((e) => e.Message)];
}

describe("taskgate's CI workflow", () => {
  let text: string;
  let jobs: Record<string, Job>;
  const runs = (job: string) => jobs[job]!.steps.map((s) => s.run ?? '').join('\n');
  before(async () => {
    text = await readFile(CI, 'utf8');
    jobs = parse(text).jobs;
  });

  it("passes GitHub's own workflow parser and schema with zero errors", async () => {
    expect(await workflowErrors(text)).to.deep.equal([]);
  });

  it('would fail that check with a job that lost its runs-on', async () => {
    expect(await workflowErrors(text.replace(/runs-on: ubuntu-24.04\n/, ''))).to.not.deep.equal([]);
  });

  it('lints, typechecks and checks the scheduler workflow for drift', () => {
    expect(runs('lint')).to.include('npm run lint').and.include('npm run typecheck');
    expect(runs('lint')).to.include('workflow --check');
  });

  it('audits the dependencies a production install holds', () => {
    expect(runs('lint')).to.match(/^npm audit --omit=dev$/m);
  });

  it('tests on every supported Node.js version, against a PostgreSQL service container, with pgbouncer', async () => {
    const engines = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')).engines.node;
    expect(engines).to.equal('^20.19.0 || >=22.12.0');
    expect(jobs.test!.strategy!.matrix.node).to.deep.equal([20, 22, 24]);
    expect(jobs.test!.services!.postgres!.image).to.match(/^postgres:\d+$/);
    expect(jobs.test!.env!.TEST_DATABASE_URL).to.match(/^postgres:\/\/.*@127\.0\.0\.1:5432\//);
    expect(runs('test')).to.include('pgbouncer').and.include('npm test');
  });

  it('runs the production smoke test and builds the Docker image', () => {
    expect(runs('production')).to.include('npm run test:production');
    expect(jobs.production!.services!.postgres).to.not.equal(undefined);
    expect(runs('docker')).to.match(/^docker build /m);
  });
});

describe("taskgate's release workflow", () => {
  let text: string;
  let workflow: {
    on: Record<string, unknown>;
    jobs: Record<string, Job & { needs?: string; permissions?: Record<string, string> }>;
  };
  before(async () => {
    text = await readFile(path.join(ROOT, '.github/workflows/release.yml'), 'utf8');
    workflow = parse(text);
  });

  it("passes GitHub's own workflow parser and schema with zero errors", async () => {
    expect(await workflowErrors(text)).to.deep.equal([]);
  });

  it('publishes on a version tag only after the tests, the package and the production build pass', () => {
    expect(workflow.on).to.deep.equal({ push: { tags: ['v*'] } });
    const test = workflow.jobs.test!.steps.map((s) => s.run ?? '').join('\n');
    expect(test).to.include('npm test').and.include('npm run test:production');
    expect(test, 'the tag must be the version').to.include('does not match package.json');
    expect(workflow.jobs.package!.needs).to.equal('test');
    expect(workflow.jobs.image!.needs).to.equal('test');
  });

  it('publishes the package with npm provenance and the image with a build attestation', () => {
    const publish = workflow.jobs.package!.steps.map((s) => s.run ?? '').join('\n');
    expect(publish).to.include('npm publish --provenance');
    expect(workflow.jobs.package!.permissions).to.include({ 'id-token': 'write' });
    const uses = workflow.jobs.image!.steps.map((s) => s.uses ?? '');
    expect(uses).to.include.members(['docker/build-push-action@v6', 'actions/attest-build-provenance@v2']);
    expect(workflow.jobs.image!.permissions).to.include({ packages: 'write', attestations: 'write' });
  });
});
