// The endpoints of test/e2e/test_cp_grpc.sh: plaintext grpc-js servers of echo.proto, all on one
// port (an EndpointSlice gives one port to all its addresses), each on its own loopback address
// and answering Unary with its own name. The first binds port 0; the others take the port it got
// on their addresses, and when one of them is taken all start again on a new one (five tries).
// Writes "listening NAME ADDR:PORT" per server, then "port PORT", and serves until SIGTERM.
//   node servers.js NAME@ADDR...
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const def = loader.loadSync(path.join(__dirname, 'echo.proto'), {keepCase: true});
const Echo = grpc.loadPackageDefinition(def).cpgrpc.Echo;
const wanted = process.argv.slice(2).map((a) => {
    const [name, addr] = a.split('@');
    return {name, addr};
});

function bind(server, addr, port) {
    return new Promise((resolve, reject) => {
        server.bindAsync(`${addr}:${port}`, grpc.ServerCredentials.createInsecure(),
            (err, got) => (err ? reject(err) : resolve(got)));
    });
}

function newServer(name) {
    const s = new grpc.Server();
    s.addService(Echo.service, {
        Unary: (call, cb) => cb(null, {text: name}),
    });
    return s;
}

async function start() {
    for (let attempt = 1; attempt <= 5; attempt++) {
        const servers = [];
        let port = 0;
        try {
            for (const w of wanted) {
                const s = newServer(w.name);
                servers.push(s);
                port = await bind(s, w.addr, port);
            }
            return {servers, port};
        } catch (e) {
            console.log(`# port ${port} taken on an address (${e.message}), trying another`);
            servers.forEach((s) => s.forceShutdown());
        }
    }
    throw new Error('no port free on every address after five tries');
}

start().then(({servers, port}) => {
    wanted.forEach((w) => console.log(`listening ${w.name} ${w.addr}:${port}`));
    console.log(`port ${port}`);
    process.on('SIGTERM', () => {
        servers.forEach((s) => s.forceShutdown());
        process.exit(0);
    });
}, (e) => {
    console.log(`error: ${e.message}`);
    process.exit(1);
});
