// The baseline of `npm run bench:start` and `npm run bench:http`: a Koa app answering 200 to
// every request, started as taskgate is (plain node, PORT and HOST from the environment). With
// BARE_REFUSE=1 it answers /cron requests 401 and closes the connection, as taskgate refuses.
import Koa from 'koa';

const refuse = process.env.BARE_REFUSE === '1';
const app = new Koa();
app.use((ctx) => {
  if (refuse && ctx.path.startsWith('/cron')) {
    ctx.status = 401;
    ctx.set('Connection', 'close');
  }
  ctx.body = { status: 'ok' };
});
app.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');
