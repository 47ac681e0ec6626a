// The far end of the proxy benchmark (bench/proxy.ts), in its own process so the load generator's event
// loop never serves both sides. One TCP port; the first byte a connection sends picks what it does:
//   E  echo every byte back (the 1 KiB request/response and new-connection measurements)
//   S  sink: count the bytes; at the end of the stream answer the count and close (upload throughput)
//   D  `D<bytes>\n`: send that many bytes and close (download throughput)
// With a certificate, a second port serves the reference of full mTLS handshakes: it verifies the client
// certificate, writes one byte and closes, so a client that reads the byte has seen the whole handshake.
//
// Usage: proxy-echo.ts [CERT KEY CA]; prints `ready ECHO_PORT TLS_PORT` when listening.

import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'

const CHUNK = Buffer.alloc(64 * 1024, 'd')

function serve(socket: net.Socket): void {
  socket.on('error', () => {})
  socket.once('data', (first: Buffer) => {
    const mode = first[0]
    if (mode === 0x45 /* E */) {
      socket.write(first)
      socket.on('data', (d: Buffer) => socket.write(d))
      socket.on('end', () => socket.end())
    } else if (mode === 0x53 /* S */) {
      let count = first.length
      socket.on('data', (d: Buffer) => {
        count += d.length
      })
      socket.on('end', () => socket.end(`${count}\n`))
    } else if (mode === 0x44 /* D */) {
      let head = first.toString('latin1')
      const start = () => {
        let left = Number(head.slice(1, head.indexOf('\n')))
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, CHUNK.length)
            left -= n
            if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
              socket.once('drain', pump)
              return
            }
          }
          socket.end()
        }
        pump()
      }
      if (head.includes('\n')) start()
      else
        socket.on('data', function more(d: Buffer) {
          head += d.toString('latin1')
          if (!head.includes('\n')) return
          socket.off('data', more)
          start()
        })
      socket.on('end', () => {})
    } else socket.destroy()
  })
}

const echo = net.createServer({ noDelay: true, allowHalfOpen: true }, serve)
await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
let tlsPort = 0
const [cert, key, ca] = process.argv.slice(2)
if (cert && key && ca) {
  const server = tls.createServer(
    {
      cert: readFileSync(cert),
      key: readFileSync(key),
      ca: readFileSync(ca),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      // Without it, the byte written after the session tickets waits for a delayed ACK (~40 ms).
      noDelay: true,
    },
    (socket) => {
      socket.on('error', () => {})
      socket.end('k')
    },
  )
  server.on('tlsClientError', () => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  tlsPort = (server.address() as net.AddressInfo).port
}
console.log(`ready ${(echo.address() as net.AddressInfo).port} ${tlsPort}`)
