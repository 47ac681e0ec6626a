// moto's server for the EC2 API: started on an ephemeral loopback port, stopped in teardown. A missing
// moto_server fails the test with the command that installs it.

import { type ChildProcess, spawn } from 'node:child_process'
import { requireTool } from '../../helpers/tools.ts'

export interface Moto {
  endpoint: string
  /** Static credentials moto accepts (it checks none). */
  credentials: { accessKeyId: string; secretAccessKey: string }
}

export async function startMoto(t: { teardown(fn: () => unknown): void }): Promise<Moto> {
  requireTool('moto_server', "pip install 'moto[server]'")
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: 'true' },
  })
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
        setTimeout(() => child.kill('SIGKILL'), 3_000).unref()
      }),
  )
  const endpoint = await new Promise<string>((resolve, reject) => {
    let output = ''
    const timer = setTimeout(
      () => reject(new Error(`moto_server did not start within 60s:\n${output}`)),
      60_000,
    )
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const m = /Running on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (m) {
        clearTimeout(timer)
        resolve(m[1]!)
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`moto_server exited (${code}) before it listened:\n${output}`))
    })
  })
  return { endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } }
}

/** An IAM call moto answers (the IAM SDK is not a dependency; moto does not check signatures). */
export async function motoIam(moto: Moto, params: Record<string, string>): Promise<string> {
  const res = await fetch(`${moto.endpoint}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization:
        'AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: new URLSearchParams({ ...params, Version: '2010-05-08' }).toString(),
  })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`moto IAM ${params.Action} answered ${res.status}: ${text}`)
  return text
}
