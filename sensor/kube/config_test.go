package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM.
type testPKI struct {
	caPEM, serverCert, serverKey, clientCert, clientKey []byte
	pool                                                *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := testPKI{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.serverCert, p.serverKey = issue(2, "apiserver", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = issue(3, "ringfence-agent", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// tlsServer answers every request with the client certificate's name and
// the bearer token it was given, as JSON, over TLS with the PKI's server
// certificate; it asks for a client certificate and checks it when given.
func tlsServer(t *testing.T, p testPKI) *httptest.Server {
	t.Helper()
	cert, err := tls.X509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"metadata":{"name":"` + cn + `","namespace":"` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") +
			`","uid":"` + r.URL.Path + `"}}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: p.pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestKubeconfig: the current context's cluster and user are used, files
// relative to the kubeconfig's directory, "-data" fields as base64; the
// server's certificate is checked against the CA, and the client
// certificate or token is presented.
func TestKubeconfig(t *testing.T) {
	p := newTestPKI(t)
	srv := tlsServer(t, p)
	dir := t.TempDir()
	write(t, dir, "ca.crt", p.caPEM)
	write(t, dir, "client.key", p.clientKey)
	write(t, dir, "token", []byte("tok-from-file\n"))
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	kc := write(t, dir, "config", []byte(`apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://192.0.2.1:1"}
- name: test
  cluster: {server: "`+srv.URL+`", certificate-authority: ca.crt}
users:
- name: cert
  user: {client-certificate-data: `+b64(p.clientCert)+`, client-key: client.key}
- name: tok
  user: {tokenFile: token}
contexts:
- name: other
  context: {cluster: other, user: cert}
- name: with-cert
  context: {cluster: test, user: cert}
- name: with-token
  context: {cluster: test, user: tok}
current-context: with-cert
`))
	c, err := newClient(kc, "ringfence/test")
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.get(t.Context(), podResource, "", "x")
	if err != nil {
		t.Fatal(err)
	}
	if o.Metadata.Name != "ringfence-agent" {
		t.Errorf("the server saw client certificate %q, want ringfence-agent", o.Metadata.Name)
	}
	data, _ := os.ReadFile(kc)
	kc2 := write(t, dir, "config2", []byte(strings.Replace(string(data), "current-context: with-cert", "current-context: with-token", 1)))
	if c, err = newClient(kc2, ""); err != nil {
		t.Fatal(err)
	}
	if o, err = c.get(t.Context(), podResource, "", "x"); err != nil || o.Metadata.Namespace != "tok-from-file" || o.Metadata.Name != "" {
		t.Errorf("with a token file: %+v %v, want the token and no certificate", o, err)
	}

	if o.Metadata.UID != "/api/v1/pods/x" {
		t.Errorf("asked %q", o.Metadata.UID)
	}
	// A server below a path keeps it.
	kcPath := write(t, dir, "config-path", []byte(strings.Replace(string(data), `server: "`+srv.URL+`"`, `server: "`+srv.URL+`/k8s/clusters/c1/"`, 1)))
	if c, err = newClient(kcPath, ""); err != nil {
		t.Fatal(err)
	}
	if o, err = c.get(t.Context(), podResource, "", "x"); err != nil || o.Metadata.UID != "/k8s/clusters/c1/api/v1/pods/x" {
		t.Errorf("a server below a path: asked %+v (%v)", o, err)
	}

	// Without the CA, the server's certificate is not trusted.
	kc3 := write(t, dir, "config3", []byte(strings.Replace(string(data), ", certificate-authority: ca.crt", "", 1)))
	if c, err = newClient(kc3, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.get(t.Context(), podResource, "", "x"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a server no CA vouches for: %v, want a certificate error", err)
	}
}

// TestKubeconfigErrors: what cannot be used is named by its field.
func TestKubeconfigErrors(t *testing.T) {
	dir := t.TempDir()
	base := `clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: USER
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	tests := []struct{ name, doc, want string }{
		{"exec", strings.Replace(base, "USER", "{exec: {command: aws}}", 1), "users[u].user.exec: credential plugins are not supported"},
		{"auth-provider", strings.Replace(base, "USER", "{auth-provider: {name: gcp}}", 1), "users[u].user.auth-provider"},
		{"basic", strings.Replace(base, "USER", "{username: a, password: b}", 1), "users[u].user.username"},
		{"key missing", strings.Replace(base, "USER", "{client-certificate: c.crt}", 1), "users[u].user: client-key: missing"},
		{"no context", strings.Replace(strings.Replace(base, "USER", "{}", 1), "current-context: x", "current-context: y", 1), `current-context "y": no such context`},
		{"unset context", strings.Replace(strings.Replace(base, "USER", "{}", 1), "current-context: x", "", 1), "current-context: not set"},
		{"no cluster", strings.Replace(strings.Replace(base, "USER", "{}", 1), "{cluster: c,", "{cluster: d,", 1), `contexts[x].context.cluster "d": no such cluster`},
		{"no user", strings.Replace(strings.Replace(base, "USER", "{}", 1), "user: u}", "user: v}", 1), `contexts[x].context.user "v": no such user`},
		{"bad server", strings.Replace(strings.Replace(base, "https://127.0.0.1:6443", "127.0.0.1:6443", 1), "USER", "{}", 1), "clusters[c].cluster.server"},
		{"bad CA", strings.Replace(strings.Replace(base, `"https://127.0.0.1:6443"`, `"https://127.0.0.1:6443", certificate-authority-data: "bm90IHBlbQ=="`, 1), "USER", "{}", 1), "no PEM certificate"},
		{"token file missing", strings.Replace(base, "USER", "{tokenFile: nothere}", 1), "users[u].user.tokenFile: token:"},
		{"insecure with a CA", strings.Replace(strings.Replace(base, `"https://127.0.0.1:6443"`, `"https://127.0.0.1:6443", insecure-skip-tls-verify: true, certificate-authority: ca.crt`, 1), "USER", "{}", 1),
			"clusters[c].cluster: certificate-authority and insecure-skip-tls-verify together"},
		{"token in clear", strings.Replace(strings.Replace(base, "https://", "http://", 1), "USER", "{token: abc}", 1), "credentials are not sent in clear"},
		{"bad proxy", strings.Replace(strings.Replace(base, `"https://127.0.0.1:6443"`, `"https://127.0.0.1:6443", proxy-url: "::"`, 1), "USER", "{}", 1), "clusters[c].cluster.proxy-url"},
	}
	for _, tt := range tests {
		kc := write(t, dir, "kc", []byte(tt.doc))
		_, err := newClient(kc, "")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--kubeconfig "+kc) {
			t.Errorf("%s: %v, want an error naming the kubeconfig and %q", tt.name, err, tt.want)
		}
	}
	if _, err := newClient(filepath.Join(dir, "missing"), ""); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("a missing kubeconfig: %v", err)
	}
}

// TestInCluster: the service account's CA is trusted and its token is
// read again at every request, so a token the kubelet rotates is used.
func TestInCluster(t *testing.T) {
	p := newTestPKI(t)
	srv := tlsServer(t, p)
	dir := t.TempDir()
	write(t, dir, "ca.crt", p.caPEM)
	write(t, dir, "token", []byte("first"))
	u, _ := url.Parse(srv.URL)
	c, err := inCluster(u.Hostname(), u.Port(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"first", "second"} {
		write(t, dir, "token", []byte(tok+"\n"))
		o, err := c.get(t.Context(), podResource, "", "x")
		if err != nil || o.Metadata.Namespace != tok {
			t.Errorf("token %q: the server saw %+v (%v)", tok, o, err)
		}
	}
	if _, err := inCluster("", "", dir); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("outside a pod: %v", err)
	}
	if _, err := inCluster("127.0.0.1", "1", t.TempDir()); err == nil || !strings.Contains(err.Error(), "ca.crt") {
		t.Errorf("no service account: %v", err)
	}
}
