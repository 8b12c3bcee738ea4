/**
 * Requests taskgate sends out: alerts to a webhook, heartbeats to a monitor, and the remote client
 * to another taskgate. Each one is bounded in time (headers and body alike) and reads the answer
 * to its end, so the connection goes back to the pool instead of hanging on an unread body.
 */
export interface OutboundRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** Ends the request early, on top of the time-out. */
  signal?: AbortSignal;
  /** Default 'follow', as fetch does; the remote client says 'manual' (a 3xx is an answer). */
  redirect?: 'follow' | 'manual';
}

export interface OutboundAnswer {
  status: number;
  headers: Headers;
  text: string;
}

async function exchange(url: string | URL, request: OutboundRequest): Promise<Response> {
  const timeout = AbortSignal.timeout(request.timeoutMs);
  return fetch(url, {
    method: request.method ?? 'GET',
    headers: request.headers,
    body: request.body,
    signal: request.signal ? AbortSignal.any([request.signal, timeout]) : timeout,
    redirect: request.redirect ?? 'follow',
  });
}

/** One request and its whole answer; rejects when either does not come in time. */
export async function send(url: string | URL, request: OutboundRequest): Promise<OutboundAnswer> {
  const response = await exchange(url, request);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/**
 * POSTs `payload` as JSON to a hook (a webhook, a heartbeat URL). Null when the hook took it (a
 * 2xx); otherwise what went wrong, for a log line: never the URL, which is a credential. Once the
 * status is in, the hook has decided: a body that breaks off after it changes nothing.
 */
export async function deliver(url: string, payload: unknown, timeoutMs: number): Promise<string | null> {
  try {
    const response = await exchange(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(payload),
      timeoutMs,
    });
    await response.arrayBuffer().catch(() => undefined);
    return response.ok ? null : `HTTP ${response.status}`;
  } catch (failure) {
    return describeFailure(failure);
  }
}

/** A failed request in a few words: the system's code (ECONNREFUSED...), a time-out, or the message. */
export function describeFailure(failure: unknown): string {
  const cause = (failure as { cause?: { code?: string } }).cause;
  if (cause?.code) return cause.code;
  if ((failure as Error).name === 'TimeoutError') return 'timed out';
  return (failure as Error).message ?? String(failure);
}
