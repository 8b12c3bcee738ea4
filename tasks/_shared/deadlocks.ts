import pRetry from 'p-retry';

/**
 * A batch that PostgreSQL rolled back to break a deadlock (40P01) or a serialization conflict
 * (40001) is rolled back whole: running it again is safe, and it finds the rows the other
 * transaction changed meanwhile as they are now.
 */
const RETRYABLE = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 5;

/**
 * Runs `batch` (one transaction) and, when PostgreSQL rolled it back for a deadlock, again at
 * once, up to MAX_ATTEMPTS tries in all. `onRetry` is told of each try that is followed by another.
 */
export function againAfterDeadlock<T>(
  batch: () => Promise<T>,
  onRetry?: (error: Error, attempt: number) => void,
): Promise<T> {
  return pRetry(batch, {
    retries: MAX_ATTEMPTS - 1,
    minTimeout: 0,
    shouldRetry: ({ error, attemptNumber }) => {
      const again = RETRYABLE.has((error as { code?: string }).code ?? '');
      if (again) onRetry?.(error, attemptNumber);
      return again;
    },
  });
}
