// The kernel's view of a TCP connection: which process holds the client end. Real sockets, real
// processes, real /proc.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readlinkSync } from 'node:fs'
import net from 'node:net'
import t from 'tap'
import { SocketOwners } from '../../agents/proxy/socket-owner.ts'

async function listen(host: string): Promise<net.Server> {
  const server = net.createServer()
  server.listen(0, host)
  await once(server, 'listening')
  return server
}

// sock_diag or /proc/net/tcp for the socket; the native addon or JS for the process holding it.
for (const [host, netlink, nativeScan] of [
  ['127.0.0.1', true, true],
  ['::1', true, true],
  ['127.0.0.1', false, false],
  ['::1', false, false],
  ['127.0.0.1', true, false],
  ['::1', false, true],
] as const) {
  t.test(
    `finds the process that connected over ${host} (${netlink ? 'sock_diag' : '/proc/net/tcp'}, ${nativeScan ? 'native' : 'JS'} descriptor scan)`,
    async (t) => {
      const server = await listen(host)
      t.teardown(() => server.close())
      const { port } = server.address() as net.AddressInfo
      const accepted = once(server, 'connection')
      // A child process connects and waits; python3 is the client so it is surely another process.
      const child = spawn('python3', [
        '-c',
        `import socket,sys,time\ns=socket.create_connection(("${host}",${port}))\nsys.stdout.write("up\\n");sys.stdout.flush()\ntime.sleep(30)`,
      ])
      t.teardown(() => child.kill())
      const [socket] = (await accepted) as [net.Socket]
      t.teardown(() => socket.destroy())
      const owners = new SocketOwners('/proc', { netlink, nativeScan })
      const found = owners.find({ address: socket.remoteAddress!, port: socket.remotePort! }, [
        { address: socket.localAddress!, port: socket.localPort! },
      ])
      t.equal(found?.pid, child.pid, 'the pid that holds the client socket')
      t.equal(found?.uid, process.getuid?.())
      t.match(found?.fdPath, new RegExp(`^/proc/${child.pid}/fd/\\d+$`))
      t.equal(readlinkSync(found!.fdPath), `socket:[${found!.inode}]`, 'the descriptor is that socket')
      const again = owners.find({ address: socket.remoteAddress!, port: socket.remotePort! }, [
        { address: socket.localAddress!, port: socket.localPort! },
      ])
      t.equal(again?.pid, child.pid, 'found again through the recent-process list')
      t.equal(
        owners.find({ address: socket.remoteAddress!, port: 1 }, [
          { address: socket.localAddress!, port: socket.localPort! },
        ]),
        undefined,
        'no socket with that address: no owner',
      )
    },
  )
}
