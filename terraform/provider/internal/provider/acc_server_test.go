package provider

// The acceptance tests' Sigil server: the real `sigil server run` from this repository, started once
// per test binary on an ephemeral loopback port with a fresh data directory, and stopped at the end.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

type sigilServer struct {
	URL      string
	Token    string
	CAFile   string
	CAPEM    string
	DataDir  string
	RepoRoot string
	Node     string
	API      *client.Client

	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	output strings.Builder
}

var (
	accOnce   sync.Once
	accServer *sigilServer
	accErr    error
)

var testProviders = map[string]func() (tfprotov6.ProviderServer, error){
	"sigil": providerserver.NewProtocol6WithError(New("test")()),
}

func TestMain(m *testing.M) {
	code := m.Run()
	if accServer != nil {
		accServer.stop()
	}
	os.Exit(code)
}

// repoRoot is found from this file's location (terraform/provider/internal/provider), so the tests
// work from any clone and any working directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..", ".."))
}

// testServer skips unless TF_ACC is set, and returns the shared server, starting it on first use.
func testServer(t *testing.T) *sigilServer {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 to run it against a real Sigil server and terraform")
	}
	accOnce.Do(func() { accServer, accErr = startSigilServer() })
	if accErr != nil {
		t.Fatalf("cannot start the Sigil server for acceptance tests: %v", accErr)
	}
	return accServer
}

func (s *sigilServer) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.output.String()
}

func (s *sigilServer) write(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.output.Len() < 4<<20 {
		s.output.WriteString(line)
		s.output.WriteByte('\n')
	}
}

func startSigilServer() (*sigilServer, error) {
	for tool, setup := range map[string]string{"node": "npm run setup", "terraform": "npm run setup (it installs terraform)"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found on PATH: run `%s`", tool, setup)
		}
	}
	node, _ := exec.LookPath("node")
	root := repoRoot()
	bin := filepath.Join(root, "bin", "sigil.js")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("the Sigil CLI is not at %s: %w", bin, err)
	}
	dataDir, err := os.MkdirTemp("", "sigil-tf-acc-")
	if err != nil {
		return nil, err
	}
	s := &sigilServer{DataDir: dataDir, RepoRoot: root, Node: node, done: make(chan struct{})}
	s.cmd = exec.Command(node, bin, "server", "run", "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	s.cmd.Dir = root
	s.cmd.Env = append(os.Environ(), "SIGIL_LOG_LEVEL=info")
	setChildAttrs(s.cmd)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	urls := make(chan string, 1)
	var readers sync.WaitGroup
	readers.Add(2)
	scan := func(r io.Reader, watch bool) {
		defer readers.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.write(line)
			if watch && strings.Contains(line, "Sigil trust service listening") {
				var rec struct {
					URL string `json:"url"`
				}
				if json.Unmarshal([]byte(line), &rec) == nil && rec.URL != "" {
					select {
					case urls <- rec.URL:
					default:
					}
				}
			}
		}
	}
	go scan(stdout, true)
	go scan(stderr, false)
	go func() {
		readers.Wait()
		_ = s.cmd.Wait()
		close(s.done)
	}()

	select {
	case s.URL = <-urls:
	case <-s.done:
		return nil, fmt.Errorf("the server exited before listening:\n%s", s.logs())
	case <-time.After(90 * time.Second):
		s.stop()
		return nil, fmt.Errorf("the server did not log \"Sigil trust service listening\" within 90s:\n%s", s.logs())
	}
	token, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("reading the bootstrap admin token: %w", err)
	}
	s.Token = strings.TrimSpace(string(token))
	s.CAFile = filepath.Join(dataDir, "server-ca.pem")
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("reading server-ca.pem: %w", err)
	}
	s.CAPEM = string(ca)
	s.API, err = client.New(client.Config{Server: s.URL, Token: s.Token, CABundlePEM: ca})
	if err != nil {
		s.stop()
		return nil, err
	}
	if _, err := s.API.WhoAmI(context.Background()); err != nil {
		s.stop()
		return nil, fmt.Errorf("the server does not answer: %w\n%s", err, s.logs())
	}
	return s, nil
}

func (s *sigilServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	_ = os.RemoveAll(s.DataDir)
}

// providerConfig is the provider block for this server; the CA is given as a file path.
func (s *sigilServer) providerConfig() string {
	return fmt.Sprintf(`
provider "sigil" {
  server    = %q
  token     = %q
  ca_bundle = %q
}
`, s.URL, s.Token, s.CAFile)
}

// cli runs the real `sigil` CLI against this server and returns its output, failing t on an error.
func (s *sigilServer) cli(t *testing.T, args ...string) string {
	t.Helper()
	full := append([]string{filepath.Join(s.RepoRoot, "bin", "sigil.js"), "--server", s.URL, "--token", s.Token, "--ca-bundle", s.CAFile}, args...)
	cmd := exec.Command(s.Node, full...)
	cmd.Dir = s.RepoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sigil %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// words matches a phrase however Terraform wraps it across lines.
func words(phrase string) *regexp.Regexp {
	parts := strings.Fields(phrase)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(strings.Join(parts, `\s+`))
}
