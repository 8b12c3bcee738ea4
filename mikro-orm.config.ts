// Configuration for the MikroORM CLI (`npx mikro-orm migration:list`, ...). taskgate itself
// migrates with `npm run taskgate -- migrate`; both use DATABASE_URL.
import { loadConfig } from './src/config.js';
import { ormOptions } from './src/db/orm.js';

const { databaseUrl } = loadConfig(process.env);
if (!databaseUrl) throw new Error('DATABASE_URL is not set: the MikroORM CLI needs a database to talk to');

export default ormOptions(databaseUrl);
