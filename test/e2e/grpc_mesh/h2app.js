// The plain HTTP app behind the proxies h2spec is run against (test/lib/h2spec.sh): node's own
// http2 module over h2c (prior knowledge) and node's http module over HTTP/1.1, for proxies
// that speak only HTTP/1.1 to their upstreams (nginx). Every request is read to its end and
// answered 200 with a short non-empty body, as h2spec expects of GET / and POST /. No packages.
//   node h2app.js --port-file FILE
// Binds 127.0.0.1 port 0 twice and writes "H2C_PORT HTTP1_PORT" to FILE (whole, by a rename).
// SIGTERM stops it with status 0.
'use strict';
const fs = require('fs');
const http = require('http');
const http2 = require('http2');

const i = process.argv.indexOf('--port-file');
if (i < 0 || !process.argv[i + 1]) {
    console.error('usage: node h2app.js --port-file FILE');
    process.exit(2);
}
const portFile = process.argv[i + 1];

function answer(req, res) {
    req.on('data', () => {});
    req.on('end', () => {
        res.writeHead(200, {'content-type': 'text/plain'});
        res.end('hello from the h2spec app\n');
    });
}

const h2c = http2.createServer({}, answer);
const h1 = http.createServer(answer);
// A broken peer (h2spec sends many on purpose) must not take the app down.
h2c.on('sessionError', () => {});
h2c.on('error', (err) => console.error(`h2c: ${err.message}`));

h2c.listen(0, '127.0.0.1', () => {
    h1.listen(0, '127.0.0.1', () => {
        fs.writeFileSync(`${portFile}.tmp`, `${h2c.address().port} ${h1.address().port}\n`);
        fs.renameSync(`${portFile}.tmp`, portFile);
        console.log(`h2c on 127.0.0.1:${h2c.address().port}, HTTP/1.1 on 127.0.0.1:${h1.address().port}`);
    });
});
process.on('SIGTERM', () => process.exit(0));
