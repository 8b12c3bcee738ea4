import { createServer } from 'node:net';

/** A failure to listen, as one line naming the port and what to do. */
export function listenError(error: unknown, host: string, port: number): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new Error(`port ${port} on ${host} is already in use: stop what listens there or set PORT`);
  if (code === 'EACCES')
    return new Error(`port ${port} on ${host} needs privileges taskgate does not have: set PORT`);
  if (code === 'EADDRNOTAVAIL') return new Error(`HOST ${host} is not an address of this machine: set HOST`);
  return error as Error;
}

/** Binds the port for a moment, so that a port in use is reported before anything starts. */
export async function ensurePortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error) => reject(listenError(error, host, port)));
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}
