// One HTTP/2 connection (h2c) driven line by line from COMMANDS (a fifo; standard input without
// it): "GET PATH" starts a
// request on a new stream without waiting for earlier ones; each response, when it ends, is
// printed as "PATH STATUS BODY". Never opens a second connection. Node's own http2 module.
// usage: node session.js ORIGIN [COMMANDS]
'use strict';
const fs = require('fs');
const http2 = require('http2');
const readline = require('readline');
const session = http2.connect(process.argv[2]);
session.on('error', (e) => console.log('session error ' + e.message));
const input = process.argv[3] ? fs.createReadStream(process.argv[3]) : process.stdin;
readline.createInterface({ input }).on('line', (line) => {
    const [cmd, path] = line.trim().split(/\s+/);
    if (cmd !== 'GET')
        return;
    const req = session.request({ ':path': path });
    let status = 0, body = '';
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (d) => { body += d; });
    req.on('end', () => console.log(`${path} ${status} ${body.trim()}`));
    req.on('error', (e) => console.log(`${path} ERR ${e.message}`));
});
