// A SPIFFE workload written against go-spiffe, the reference Go library, to prove Sigil's Workload API
// works with it unchanged. Every command prints one JSON document per line on stdout.
//
//	interop fetch -socket S -audience A    X509-SVID, bundles, JWT-SVID, JWT bundles, JWT validation
//	interop serve -socket S -allow ID      spiffetls mTLS server; one line per accepted connection
//	interop dial  -socket S -addr A -expect ID   spiffetls mTLS client; prints the server's reply
//	interop watch -socket S -n N           one line per X509 context update, until N were seen
//	interop bench -socket S -n N           FetchX509SVID latency (p50, p99) over N calls
//	interop bundle-endpoint -td TD -cert F -key F -bundle F -addr A
//	                                       a SPIFFE bundle endpoint (go-spiffe's federation handler) with
//	                                       an X509-SVID (https_spiffe); every file is read again per request
//	interop fetch-bundle -td TD -url U -ca F   go-spiffe's federation client (https_web) against an endpoint
//
// The test builds this program twice with a different -X main.build, so the two binaries have
// different code (different sha256) and the Workload API gives each its own identity.
package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Set with -ldflags "-X main.build=NAME".
var build = "dev"

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: interop fetch|serve|dial|bench [flags]"))
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	socket := flags.String("socket", "", "Workload API socket path")
	audience := flags.String("audience", "interop", "JWT-SVID audience")
	allow := flags.String("allow", "", "the SPIFFE ID a server accepts")
	addr := flags.String("addr", "127.0.0.1:0", "address to listen on or dial")
	expect := flags.String("expect", "", "the SPIFFE ID a client expects of the server")
	n := flags.Int("n", 1000, "calls for bench")
	td := flags.String("td", "", "trust domain (bundle-endpoint, fetch-bundle)")
	certFile := flags.String("cert", "", "certificate chain PEM (bundle-endpoint)")
	keyFile := flags.String("key", "", "private key PEM (bundle-endpoint)")
	bundleFile := flags.String("bundle", "", "SPIFFE bundle JSON (bundle-endpoint)")
	url := flags.String("url", "", "bundle endpoint URL (fetch-bundle)")
	caFile := flags.String("ca", "", "CA PEM for the endpoint's web certificate (fetch-bundle)")
	_ = flags.Parse(os.Args[2:])
	switch os.Args[1] {
	case "bundle-endpoint":
		bundleEndpoint(spiffeid.RequireTrustDomainFromString(*td), *certFile, *keyFile, *bundleFile, *addr)
		return
	case "fetch-bundle":
		fetchBundle(spiffeid.RequireTrustDomainFromString(*td), *url, *caFile)
		return
	}
	if *socket == "" {
		fail(errors.New("-socket is required"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clientOpts := workloadapi.WithClientOptions(workloadapi.WithAddr("unix://" + *socket))

	switch os.Args[1] {
	case "fetch":
		fetch(ctx, *socket, *audience)
	case "serve":
		serve(ctx, clientOpts, *addr, spiffeid.RequireFromString(*allow))
	case "dial":
		dial(ctx, clientOpts, *addr, spiffeid.RequireFromString(*expect))
	case "watch":
		watch(ctx, *socket, *n)
	case "bench":
		bench(ctx, *socket, *n)
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fetch(ctx context.Context, socket, audience string) {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+socket))
	check(err)
	defer client.Close()

	x509ctx, err := client.FetchX509Context(ctx)
	check(err)
	svid := x509ctx.DefaultSVID()
	// The SVID must verify against the bundle the same API served.
	_, chains, err := x509svid.Verify(svid.Certificates, x509ctx.Bundles)
	check(err)

	bundles, err := client.FetchX509Bundles(ctx)
	check(err)
	jwtSVID, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience})
	check(err)
	jwtBundles, err := client.FetchJWTBundles(ctx)
	check(err)
	// Validate locally with the JWT bundles, and through the API.
	local, err := jwtsvid.ParseAndValidate(jwtSVID.Marshal(), jwtBundles, []string{audience})
	check(err)
	validated, err := client.ValidateJWTSVID(ctx, jwtSVID.Marshal(), audience)
	check(err)
	_, wrongAudience := client.ValidateJWTSVID(ctx, jwtSVID.Marshal(), "not-"+audience)

	emit(map[string]any{
		"build":               build,
		"x509SvidIds":         ids(x509ctx.SVIDs),
		"x509SvidHint":        svid.Hint,
		"x509ChainLength":     len(svid.Certificates),
		"x509VerifiedChain":   len(chains[0]),
		"x509NotAfter":        svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339),
		"x509KeyMatches":      keyMatches(svid),
		"x509Bundles":         trustDomains(bundles.Bundles()),
		"x509ContextBundles":  trustDomains(x509ctx.Bundles.Bundles()),
		"jwtSvidId":           jwtSVID.ID.String(),
		"jwtAudience":         jwtSVID.Audience,
		"jwtBundles":          jwtTrustDomains(jwtBundles.Bundles()),
		"jwtLocallyValidated": local.ID.String(),
		"jwtApiValidated":     validated.ID.String(),
		"jwtWrongAudience":    errString(wrongAudience),
	})
}

func serve(ctx context.Context, opts workloadapi.X509SourceOption, addr string, allow spiffeid.ID) {
	source, err := workloadapi.NewX509Source(ctx, opts)
	check(err)
	defer source.Close()
	own, err := source.GetX509SVID()
	check(err)
	listener, err := spiffetls.ListenWithMode(ctx, "tcp", addr,
		spiffetls.MTLSServerWithSource(tlsconfig.AuthorizeID(allow), source))
	check(err)
	defer listener.Close()
	emit(map[string]any{"listening": listener.Addr().String(), "id": own.ID.String()})
	for {
		conn, err := listener.Accept()
		if err != nil {
			fail(err)
		}
		go func(conn net.Conn) {
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			// The handshake runs on first read; an unauthorized client fails here.
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				emit(map[string]any{"accepted": false, "error": err.Error()})
				return
			}
			peer, err := spiffetls.PeerIDFromConn(conn)
			check(err)
			fmt.Fprintf(conn, "%s: %s -> %s (%s)\n", strings.TrimSpace(line), peer, own.ID, build)
			emit(map[string]any{"accepted": true, "peer": peer.String()})
		}(conn)
	}
}

func dial(ctx context.Context, opts workloadapi.X509SourceOption, addr string, expect spiffeid.ID) {
	conn, err := spiffetls.DialWithMode(ctx, "tcp", addr,
		spiffetls.MTLSClientWithSourceOptions(tlsconfig.AuthorizeID(expect), opts))
	if err != nil {
		emit(map[string]any{"ok": false, "error": err.Error()})
		return
	}
	defer conn.Close()
	peer, err := spiffetls.PeerIDFromConn(conn)
	check(err)
	_, err = fmt.Fprintf(conn, "ping\n")
	check(err)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		emit(map[string]any{"ok": false, "peer": peer.String(), "error": err.Error()})
		return
	}
	emit(map[string]any{"ok": true, "peer": peer.String(), "reply": strings.TrimSpace(reply)})
}

type watcher struct {
	left   int
	cancel context.CancelFunc
}

func (w *watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	serials := []string{}
	for _, s := range c.SVIDs {
		serials = append(serials, s.Certificates[0].SerialNumber.Text(16))
	}
	emit(map[string]any{"ids": ids(c.SVIDs), "serials": serials})
	if w.left--; w.left <= 0 {
		w.cancel()
	}
}

func (w *watcher) OnX509ContextWatchError(err error) {
	// After the last update the watch is cancelled on purpose.
	if w.left > 0 {
		emit(map[string]any{"watchError": err.Error()})
	}
}

func watch(ctx context.Context, socket string, n int) {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+socket))
	check(err)
	defer client.Close()
	ctx, cancel := context.WithCancel(ctx)
	err = client.WatchX509Context(ctx, &watcher{left: n, cancel: cancel})
	if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		fail(err)
	}
}

func bench(ctx context.Context, socket string, n int) {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+socket))
	check(err)
	defer client.Close()
	// Warm up the connection and the agent's caches.
	for i := 0; i < 20; i++ {
		_, err := client.FetchX509SVID(ctx)
		check(err)
	}
	durations := make([]time.Duration, n)
	start := time.Now()
	for i := range durations {
		t0 := time.Now()
		_, err := client.FetchX509SVID(ctx)
		check(err)
		durations[i] = time.Since(t0)
	}
	total := time.Since(start)
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	at := func(q float64) float64 {
		return float64(durations[int(q*float64(n-1))].Microseconds()) / 1000
	}
	emit(map[string]any{"calls": n, "p50Ms": at(0.50), "p99Ms": at(0.99), "maxMs": at(1), "callsPerSecond": float64(n) / total.Seconds()})
}

// fileBundles reads the bundle file on every request, so a test can rotate what the endpoint serves.
type fileBundles struct {
	td   spiffeid.TrustDomain
	path string
}

func (f fileBundles) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	if td != f.td {
		return nil, fmt.Errorf("no bundle for %s", td)
	}
	return spiffebundle.Load(td, f.path)
}

func bundleEndpoint(td spiffeid.TrustDomain, certFile, keyFile, bundleFile, addr string) {
	handler, err := federation.NewHandler(td, fileBundles{td: td, path: bundleFile})
	check(err)
	listener, err := net.Listen("tcp", addr)
	check(err)
	server := &http.Server{
		Handler: handler,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Read again per handshake: the test swaps the endpoint's SVID (a CA rotation).
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				return &cert, err
			},
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	emit(map[string]any{"listening": listener.Addr().String()})
	fail(server.ServeTLS(listener, "", ""))
}

func fetchBundle(td spiffeid.TrustDomain, url, caFile string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pem, err := os.ReadFile(caFile)
	check(err)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail(errors.New("no certificate in -ca"))
	}
	bundle, err := federation.FetchBundle(ctx, td, url, federation.WithWebPKIRoots(roots))
	check(err)
	seq, _ := bundle.SequenceNumber()
	hint, _ := bundle.RefreshHint()
	emit(map[string]any{
		"trustDomain":     bundle.TrustDomain().String(),
		"x509Authorities": len(bundle.X509Authorities()),
		"jwtAuthorities":  len(bundle.JWTAuthorities()),
		"sequence":        seq,
		"refreshHint":     hint.Seconds(),
	})
}

func keyMatches(svid *x509svid.SVID) bool {
	pub, ok := svid.PrivateKey.Public().(interface{ Equal(x crypto.PublicKey) bool })
	return ok && pub.Equal(svid.Certificates[0].PublicKey)
}

func ids(svids []*x509svid.SVID) []string {
	out := []string{}
	for _, s := range svids {
		out = append(out, s.ID.String())
	}
	return out
}

func trustDomains[T interface{ TrustDomain() spiffeid.TrustDomain }](bundles []T) []string {
	out := []string{}
	for _, b := range bundles {
		out = append(out, b.TrustDomain().String())
	}
	sort.Strings(out)
	return out
}

func jwtTrustDomains(bundles []*jwtbundle.Bundle) []string {
	out := []string{}
	for _, b := range bundles {
		out = append(out, fmt.Sprintf("%s:%d", b.TrustDomain(), len(b.JWTAuthorities())))
	}
	sort.Strings(out)
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func emit(v any) {
	b, err := json.Marshal(v)
	check(err)
	fmt.Println(string(b))
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "interop:", err)
	os.Exit(1)
}
