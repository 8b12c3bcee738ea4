/**
 * django-celery-results' result tables, for celerybackendcleanup_daily. Not a task.
 *
 * Upstream: Celery's beat runs `celery.backend_cleanup` daily at 4:00 when `result_expires` is set
 * (Celery's default: one day); with the django-db backend it is `DatabaseBackend.cleanup()`, which
 * deletes `TaskResult` then `GroupResult` rows with `date_done < now - result_expires` (managers.py,
 * `delete_expired`; a raw delete in 2.4, `QuerySet.delete()` from 2.5: nothing points at either
 * model, so both delete the same rows). `date_done` is indexed: batches walk that index.
 */
import type { DeleteRule } from '../_shared/batchDelete.js';

export const TASK_RESULT = 'django_celery_results_taskresult';
export const GROUP_RESULT = 'django_celery_results_groupresult';
export const HINT = 'django_celery_results in INSTALLED_APPS';

export function expiredResultRules(cutoff: string): DeleteRule[] {
  return [TASK_RESULT, GROUP_RESULT].map((table) => ({
    name: table,
    table,
    key: 'id',
    where: 't.date_done < $1',
    values: [cutoff],
    indexed: 'date_done',
  }));
}
