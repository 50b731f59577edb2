package kube

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// serviceAccountDir is where a pod's service account is mounted.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// newClient returns a client of the API server that kubeconfig names, or
// of the pod's own cluster (its service account) when kubeconfig is empty.
func newClient(kubeconfig, userAgent string) (*client, error) {
	var (
		c   *client
		err error
	)
	if kubeconfig == "" {
		c, err = inCluster(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"), serviceAccountDir)
		if err != nil {
			return nil, fmt.Errorf("--kubernetes without --kubeconfig: in-cluster configuration: %w", err)
		}
	} else if c, err = fromKubeconfig(kubeconfig); err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
	}
	c.userAgent = userAgent
	return c, nil
}

// httpClient is the client of one API server, through proxy (nil: the
// environment's). Watches last minutes, so no request has an overall
// timeout: each is bounded by its context, and an HTTP/2 connection that
// stops answering is found by its pings.
func httpClient(tc *tls.Config, proxy *url.URL) *http.Client {
	proxyFunc := http.ProxyFromEnvironment
	if proxy != nil {
		proxyFunc = http.ProxyURL(proxy)
	}
	tr := &http.Transport{
		Proxy:               proxyFunc,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}
	return &http.Client{Transport: tr}
}

// inCluster is the configuration a pod's service account gives: the
// cluster's service address, its CA, and the account's token, read again
// at every request (the kubelet rotates it).
func inCluster(host, port, dir string) (*client, error) {
	if host == "" || port == "" {
		return nil, errors.New("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod?)")
	}
	pool, err := caPool(filepath.Join(dir, "ca.crt"), "")
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "token")
	token := func() (string, error) { return readToken(tokenFile) }
	if _, err := token(); err != nil {
		return nil, err
	}
	return &client{
		server: "https://" + net.JoinHostPort(host, port),
		http:   httpClient(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil),
		token:  token,
	}, nil
}

func readToken(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("token: %s is empty", file)
	}
	return tok, nil
}

// caPool is the pool of a PEM file, or of PEM data when file is "".
func caPool(file, data string) (*x509.CertPool, error) {
	pem := []byte(data)
	what := "certificate-authority-data"
	if file != "" {
		var err error
		if pem, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("certificate authority: %w", err)
		}
		what = file
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("certificate authority %s: no PEM certificate", what)
	}
	return pool, nil
}

// kubeconfigFile is the part of a kubeconfig the agent reads.
type kubeconfigFile struct {
	CurrentContext string      `yaml:"current-context"`
	Contexts       []kcContext `yaml:"contexts"`
	Clusters       []kcCluster `yaml:"clusters"`
	Users          []kcUser    `yaml:"users"`
}

type kcContext struct {
	Name    string `yaml:"name"`
	Context struct {
		Cluster string `yaml:"cluster"`
		User    string `yaml:"user"`
	} `yaml:"context"`
}

type kcCluster struct {
	Name    string `yaml:"name"`
	Cluster struct {
		Server        string `yaml:"server"`
		ProxyURL      string `yaml:"proxy-url"`
		CA            string `yaml:"certificate-authority"`
		CAData        string `yaml:"certificate-authority-data"`
		Insecure      bool   `yaml:"insecure-skip-tls-verify"`
		TLSServerName string `yaml:"tls-server-name"`
	} `yaml:"cluster"`
}

type kcUser struct {
	Name string `yaml:"name"`
	User struct {
		Token        string `yaml:"token"`
		TokenFile    string `yaml:"tokenFile"`
		Cert         string `yaml:"client-certificate"`
		CertData     string `yaml:"client-certificate-data"`
		Key          string `yaml:"client-key"`
		KeyData      string `yaml:"client-key-data"`
		Username     string `yaml:"username"`
		Exec         any    `yaml:"exec"`
		AuthProvider any    `yaml:"auth-provider"`
	} `yaml:"user"`
}

// fromKubeconfig is the configuration of a kubeconfig's current context:
// its cluster's server and CA, and its user's client certificate or
// token. Relative file names are relative to the kubeconfig's directory,
// as kubectl reads them. Credential plugins are refused by name.
func fromKubeconfig(file string) (*client, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var kc kubeconfigFile
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, err
	}
	if kc.CurrentContext == "" {
		return nil, errors.New("current-context: not set")
	}
	dir := filepath.Dir(file)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	ci := slices.IndexFunc(kc.Contexts, func(c kcContext) bool { return c.Name == kc.CurrentContext })
	if ci < 0 {
		return nil, fmt.Errorf("current-context %q: no such context", kc.CurrentContext)
	}
	ctx := kc.Contexts[ci].Context
	cl := slices.IndexFunc(kc.Clusters, func(c kcCluster) bool { return c.Name == ctx.Cluster })
	if cl < 0 {
		return nil, fmt.Errorf("contexts[%s].context.cluster %q: no such cluster", kc.CurrentContext, ctx.Cluster)
	}
	cluster := kc.Clusters[cl].Cluster
	where := fmt.Sprintf("clusters[%s].cluster", ctx.Cluster)
	srv, err := url.Parse(cluster.Server)
	if err != nil || srv.Host == "" || (srv.Scheme != "https" && srv.Scheme != "http") {
		return nil, fmt.Errorf("%s.server %q: not an http(s) URL", where, cluster.Server)
	}
	var proxy *url.URL
	if cluster.ProxyURL != "" {
		if proxy, err = url.Parse(cluster.ProxyURL); err != nil || proxy.Host == "" {
			return nil, fmt.Errorf("%s.proxy-url %q: not a URL", where, cluster.ProxyURL)
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cluster.TLSServerName, InsecureSkipVerify: cluster.Insecure}
	if cluster.CA != "" || cluster.CAData != "" {
		if cluster.Insecure {
			return nil, fmt.Errorf("%s: certificate-authority and insecure-skip-tls-verify together: which one is meant?", where)
		}
		caData, err := decodeData(cluster.CAData)
		if err != nil {
			return nil, fmt.Errorf("%s.certificate-authority-data: %w", where, err)
		}
		caFile := rel(cluster.CA)
		if caData != "" { // the data, when given, wins (as kubectl reads it)
			caFile = ""
		}
		if tc.RootCAs, err = caPool(caFile, caData); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	// A server below a path (a proxy's /k8s/clusters/NAME) keeps it.
	c := &client{server: srv.Scheme + "://" + srv.Host + strings.TrimSuffix(srv.EscapedPath(), "/")}
	if ctx.User != "" {
		ui := slices.IndexFunc(kc.Users, func(u kcUser) bool { return u.Name == ctx.User })
		if ui < 0 {
			return nil, fmt.Errorf("contexts[%s].context.user %q: no such user", kc.CurrentContext, ctx.User)
		}
		u := kc.Users[ui].User
		where := fmt.Sprintf("users[%s].user", ctx.User)
		switch {
		case u.Exec != nil:
			return nil, fmt.Errorf("%s.exec: credential plugins are not supported; use a client certificate or a token", where)
		case u.AuthProvider != nil:
			return nil, fmt.Errorf("%s.auth-provider: not supported; use a client certificate or a token", where)
		case u.Username != "":
			return nil, fmt.Errorf("%s.username: basic authentication is not supported; use a client certificate or a token", where)
		}
		if u.Cert != "" || u.CertData != "" || u.Key != "" || u.KeyData != "" {
			cert, err := clientCert(rel(u.Cert), u.CertData, rel(u.Key), u.KeyData)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		switch {
		case u.Token != "":
			tok := u.Token
			c.token = func() (string, error) { return tok, nil }
		case u.TokenFile != "":
			f := rel(u.TokenFile)
			if _, err := readToken(f); err != nil {
				return nil, fmt.Errorf("%s.tokenFile: %w", where, err)
			}
			c.token = func() (string, error) { return readToken(f) }
		}
	}
	if srv.Scheme == "http" && (c.token != nil || len(tc.Certificates) > 0) {
		return nil, fmt.Errorf("%s.server %q: credentials are not sent in clear; use https", where, cluster.Server)
	}
	c.http = httpClient(tc, proxy)
	return c, nil
}

// clientCert is a client certificate and key, each from a file or from
// base64 data.
func clientCert(certFile, certData, keyFile, keyData string) (tls.Certificate, error) {
	switch {
	case certFile == "" && certData == "":
		return tls.Certificate{}, errors.New("client-certificate: missing, with a client-key")
	case keyFile == "" && keyData == "":
		return tls.Certificate{}, errors.New("client-key: missing, with a client-certificate")
	}
	load := func(file, data, field string) ([]byte, error) {
		if file != "" {
			return os.ReadFile(file)
		}
		d, err := decodeData(data)
		if err != nil {
			return nil, fmt.Errorf("%s-data: %w", field, err)
		}
		return []byte(d), nil
	}
	cert, err := load(certFile, certData, "client-certificate")
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := load(keyFile, keyData, "client-key")
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client-certificate and client-key: %w", err)
	}
	return pair, nil
}

// decodeData decodes a kubeconfig's base64 "-data" field ("" stays "").
func decodeData(s string) (string, error) {
	d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	return string(d), err
}
