package image

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Transport is the HTTP transport for registry traffic: go's defaults plus bounded waits, so
// that a registry that accepts a connection and then stalls fails instead of hanging. It
// refuses plain HTTP to any host that is not on loopback: go-containerregistry falls back to
// HTTP on its own for private-network and ".local" registries when HTTPS fails, which would let
// anyone on the network downgrade the connection and read credentials.
func Transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	t.TLSHandshakeTimeout = 15 * time.Second
	t.MaxIdleConnsPerHost = 16
	return loopbackHTTPOnly{t}
}

// loopbackHTTPOnly refuses plain-HTTP requests to hosts that are not on loopback.
type loopbackHTTPOnly struct{ next http.RoundTripper }

func (t loopbackHTTPOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !IsLoopbackHost(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to %s: only registries on loopback may be reached without TLS", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}

// IsLoopbackHost reports whether a registry host ("localhost:5000", "127.0.0.1", "[::1]:5000")
// is on this machine.
func IsLoopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ParseReference parses a registry reference. insecure allows plain HTTP, and only for loopback
// registries.
func ParseReference(ref string, insecure bool) (name.Reference, error) {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	if insecure && !IsLoopbackHost(r.Context().RegistryStr()) {
		return nil, fmt.Errorf("--insecure is allowed only for registries on loopback, not %s", r.Context().RegistryStr())
	}
	return r, nil
}

// RemoteOptions are the go-containerregistry options moat uses for every registry call:
// credentials from the Docker config and credential helpers, bounded waits, the context.
func RemoteOptions(ctx context.Context, platform *v1.Platform) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(Transport()),
		remote.WithUserAgent("moat"),
	}
	if platform != nil {
		opts = append(opts, remote.WithPlatform(*platform))
	}
	return opts
}

func openRegistry(ctx context.Context, ref string, opts Options) (*Image, error) {
	r, err := ParseReference(ref, opts.Insecure)
	if err != nil {
		return nil, err
	}
	rimg, err := remote.Image(r, RemoteOptions(ctx, opts.Platform)...)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", r, err)
	}
	digest, err := rimg.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest digest: %w", err)
	}
	m, err := rimg.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	cfg, err := rimg.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	img := &Image{
		Reference: r.Context().Digest(digest.String()).String(),
		Digest:    digest.String(),
		ID:        m.Config.Digest.String(),
		Config:    cfg,
		Platform:  &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
	}
	layers, err := rimg.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	byDigest := map[v1.Hash]v1.Layer{}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		byDigest[d] = l
	}
	err = fillLayers(img, m.Layers, func(d v1.Descriptor) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) { return byDigest[d.Digest].Compressed() }
	})
	if err != nil {
		return nil, err
	}
	for _, l := range img.Layers {
		l.verified = true // remote layers check their digest at EOF
	}
	return img, nil
}
