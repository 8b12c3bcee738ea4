import { execFileSync } from 'node:child_process';

/** The processes (pid and command line) whose command line contains `text`, from ps. */
export function processesMatching(text: string): string[] {
  const lines = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n');
  return lines.map((line) => line.trim()).filter((line) => line.includes(text) && !line.includes(' ps -eo'));
}

/** Whether any process is left in a process group. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
