// @peculiar/x509, set up once: its dependency injection (tsyringe) needs the reflect-metadata polyfill
// loaded first, and it must use node's WebCrypto. Import the library from here, never directly.
// Only the slow paths use it (CA certificates, CSRs in tools and tests); SVIDs are issued without it.

import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as never)

export { x509 }
