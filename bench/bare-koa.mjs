// The baseline of `npm run bench:start` and `npm run bench:http`: a Koa app answering 200 to
// every request, started as taskgate is (plain node, PORT and HOST from the environment).
import Koa from 'koa';

const app = new Koa();
app.use((ctx) => {
  ctx.body = { status: 'ok' };
});
app.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');
