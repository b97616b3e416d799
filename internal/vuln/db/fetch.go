package db

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// DefaultBaseURL is the public OSV bucket, which publishes <ecosystem>/all.zip.
const DefaultBaseURL = "https://osv-vulnerabilities.storage.googleapis.com"

// MaxArchiveSize bounds an archive Fetch accepts: 2 GiB, far above the largest OSV export.
const MaxArchiveSize = 2 << 30

var (
	// ErrIntegrity is wrapped by Fetch errors about the bytes received: fewer than the server
	// declared, more than MaxArchiveSize, or not matching a checksum the server sent.
	ErrIntegrity = errors.New("download failed its integrity check")
	// ErrUnknownEcosystem is wrapped by Fetch when the server has no archive for the ecosystem.
	ErrUnknownEcosystem = errors.New("no OSV archive for this ecosystem")
	// ErrIdleTimeout is wrapped by Fetch when the server sends nothing for FetchOptions.IdleTimeout.
	ErrIdleTimeout = errors.New("the server sent nothing within the idle timeout")
)

// FetchOptions tune Fetch.
type FetchOptions struct {
	// BaseURL is where the archives are, <BaseURL>/<ecosystem>/all.zip; DefaultBaseURL by
	// default. Mirrors and proxies go here. It must be https, or http to a loopback host.
	BaseURL string
	// HTTPClient makes the requests; by default one with Go's default transport (which
	// honours HTTPS_PROXY). Redirects to plain HTTP off loopback are refused either way.
	HTTPClient *http.Client
	// IdleTimeout is the longest the server may send nothing, waiting for the response or
	// within the body; 60 seconds by default.
	IdleTimeout time.Duration
	// Progress, when set, is called as the body arrives with the ecosystem, the bytes
	// received so far and the total (-1 when the server does not say).
	Progress func(ecosystem string, done, total int64)
}

// FetchInfo describes a downloaded archive.
type FetchInfo struct {
	// Ecosystem is the archive's ecosystem, URL where it came from (without a password) and
	// Path the file it was saved to.
	Ecosystem, URL, Path string
	// Size and SHA256 (hex) describe the file.
	Size   int64
	SHA256 string
	// LastModified is the server's Last-Modified time; zero when it sent none.
	LastModified time.Time
	// Verified names the checksums the server sent and the file matched ("md5", "crc32c").
	Verified []string
}

// Input returns the input that imports the archive as the source named after its ecosystem.
func (fi *FetchInfo) Input() Input {
	return Input{Path: fi.Path, Source: fi.Ecosystem, Origin: fi.URL, AsOf: fi.LastModified, SHA256: fi.SHA256}
}

// Fetch downloads the OSV archive of an ecosystem ("Go", "PyPI", "Debian") into a new file in
// dir. It checks the status, the size against Content-Length and MaxArchiveSize, and the
// checksums of x-goog-hash (md5, crc32c) and Content-MD5 when the server sends them; the
// archive's contents are checked when it is imported. On error no file is left in dir.
func Fetch(ctx context.Context, ecosystem, dir string, opts FetchOptions) (*FetchInfo, error) {
	full, u, err := archiveURL(opts.BaseURL, ecosystem)
	if err != nil {
		return nil, err
	}
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = 60 * time.Second
	}
	client := safeClient(opts.HTTPClient)

	// A timer that cancels the request unless data keeps arriving.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idleErr := fmt.Errorf("%w (%s)", ErrIdleTimeout, idle)
	timer := time.AfterFunc(idle, func() { cancel(idleErr) })
	defer timer.Stop()
	fail := func(err error) error {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrIdleTimeout) {
			err = cause
		}
		return fmt.Errorf("downloading %s: %w", u, err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, full, nil)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", u, err)
	}
	// Ask for the bytes as stored, so that the length and checksums are those of the archive.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fail(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("downloading %s: %s: %w %q (ecosystem names are case-sensitive: \"Go\", \"PyPI\", \"Debian\")", u, resp.Status, ErrUnknownEcosystem, ecosystem)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("downloading %s: unexpected status %s", u, resp.Status)
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil, fmt.Errorf("downloading %s: the server sent the archive with Content-Encoding %q", u, enc)
	}
	total := resp.ContentLength
	if total > MaxArchiveSize {
		return nil, fmt.Errorf("downloading %s: %w: %d bytes, more than the limit of %d", u, ErrIntegrity, total, int64(MaxArchiveSize))
	}
	sums, err := expectedSums(resp.Header)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", u, err)
	}

	f, err := os.CreateTemp(dir, "download-*.zip")
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", u, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	sha := sha256.New()
	writers := []io.Writer{f, sha}
	for _, s := range sums {
		writers = append(writers, s.h)
	}
	body := &idleReader{r: resp.Body, timer: timer, idle: idle, progress: func(n int64) {
		if opts.Progress != nil {
			opts.Progress(ecosystem, n, total)
		}
	}}
	n, err := io.Copy(io.MultiWriter(writers...), io.LimitReader(body, MaxArchiveSize+1))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && total >= 0 {
			return nil, fail(fmt.Errorf("%w: the connection ended after %d of %d bytes", ErrIntegrity, n, total))
		}
		return nil, fail(err)
	}
	if n > MaxArchiveSize {
		return nil, fmt.Errorf("downloading %s: %w: more than the limit of %d bytes", u, ErrIntegrity, int64(MaxArchiveSize))
	}
	if total >= 0 && n != total {
		return nil, fmt.Errorf("downloading %s: %w: received %d bytes, the server declared %d", u, ErrIntegrity, n, total)
	}
	var verified []string
	for _, s := range sums {
		if got := s.h.Sum(nil); !bytes.Equal(got, s.want) {
			return nil, fmt.Errorf("downloading %s: %w: %s %s is %s, the server declared %s", u, ErrIntegrity,
				s.name, s.header, base64.StdEncoding.EncodeToString(got), base64.StdEncoding.EncodeToString(s.want))
		}
		verified = append(verified, s.name)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("downloading %s: %w", u, err)
	}
	ok = true
	fi := &FetchInfo{Ecosystem: ecosystem, URL: u, Path: f.Name(), Size: n, SHA256: hex.EncodeToString(sha.Sum(nil)), Verified: verified}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil && t.Before(time.Now().Add(time.Hour)) {
		fi.LastModified = t.UTC()
	}
	return fi, nil
}

// archiveURL checks the base URL and returns the archive's URL, and the same without a
// password for messages and the database's status.
func archiveURL(base, ecosystem string) (u, shown string, err error) {
	if err := checkSourceName(ecosystem); err != nil {
		return "", "", fmt.Errorf("downloading advisories: %w", err)
	}
	if base == "" {
		base = DefaultBaseURL
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", "", fmt.Errorf("downloading advisories: base URL: %w", err)
	}
	if err := checkScheme(b); err != nil {
		return "", "", fmt.Errorf("downloading advisories: base URL %s: %w", b.Redacted(), err)
	}
	if b.RawQuery != "" || b.Fragment != "" {
		return "", "", fmt.Errorf("downloading advisories: base URL %s: a query or fragment cannot be extended with a path", b.Redacted())
	}
	b = b.JoinPath(ecosystem, "all.zip")
	return b.String(), b.Redacted(), nil
}

// checkScheme allows https anywhere and plain http only to this machine, where nobody on the
// network can change the data in transit.
func checkScheme(u *url.URL) error {
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("plain HTTP is allowed only to loopback hosts, not %q: use https", u.Host)
	}
	return fmt.Errorf("unsupported URL (want https://host/...)")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// safeClient returns a copy of c (or a default client) that refuses redirects that checkScheme
// refuses.
func safeClient(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	next := out.CheckRedirect
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkScheme(req.URL); err != nil {
			return fmt.Errorf("refusing redirect to %s: %w", req.URL.Redacted(), err)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &out
}

// idleReader resets the idle timer at each read that returns data.
type idleReader struct {
	r        io.Reader
	timer    *time.Timer
	idle     time.Duration
	done     int64
	progress func(int64)
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
		r.done += int64(n)
		r.progress(r.done)
	}
	return n, err
}

type expectedSum struct {
	name, header string
	want         []byte
	h            hash.Hash
}

// expectedSums reads the checksums a response declares: Google Cloud Storage's x-goog-hash
// ("crc32c=<base64>, md5=<base64>", perhaps over several lines) and Content-MD5. A checksum
// that is present but malformed is an error: the data cannot be checked as the server meant.
func expectedSums(h http.Header) ([]expectedSum, error) {
	var out []expectedSum
	add := func(name, header, b64 string) error {
		want, err := base64.StdEncoding.DecodeString(b64)
		size := map[string]int{"md5": md5.Size, "crc32c": 4}[name]
		if err != nil || len(want) != size {
			return fmt.Errorf("%w: malformed %s %s checksum %q", ErrIntegrity, header, name, b64)
		}
		for _, s := range out {
			if s.name == name {
				if !bytes.Equal(s.want, want) {
					return fmt.Errorf("%w: the server declared two different %s checksums", ErrIntegrity, name)
				}
				return nil
			}
		}
		var hh hash.Hash
		if name == "md5" {
			hh = md5.New()
		} else {
			hh = crc32.New(crc32.MakeTable(crc32.Castagnoli))
		}
		out = append(out, expectedSum{name: name, header: header, want: want, h: hh})
		return nil
	}
	for _, line := range h.Values("X-Goog-Hash") {
		for part := range strings.SplitSeq(line, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				continue
			}
			if k = strings.ToLower(k); k == "md5" || k == "crc32c" {
				if err := add(k, "x-goog-hash", v); err != nil {
					return nil, err
				}
			}
		}
	}
	if v := h.Get("Content-MD5"); v != "" {
		if err := add("md5", "Content-MD5", strings.TrimSpace(v)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Refresh downloads the archives of ecosystems from the OSV bucket (or the mirror in
// fopts.BaseURL) and imports them, as Update does, replacing those sources: `moat db update`.
// The update lock is held from the first download, so that a second refresh fails (or waits,
// see UpdateOptions.LockWait) instead of downloading everything again. If any download or
// import fails, the database is as it was and the downloads are removed.
func Refresh(ctx context.Context, dir string, ecosystems []string, fopts FetchOptions, uopts UpdateOptions) (*Result, error) {
	if len(ecosystems) == 0 {
		return nil, errors.New("updating the advisory database: no ecosystems to download")
	}
	var inputs []Input
	for _, eco := range ecosystems {
		if _, _, err := archiveURL(fopts.BaseURL, eco); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(inputs, func(in Input) bool { return in.Source == eco }) {
			inputs = append(inputs, Input{Source: eco})
		}
	}
	for _, r := range uopts.Remove {
		if err := checkSourceName(r); err != nil {
			return nil, fmt.Errorf("removing a source: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("updating the advisory database: %w", err)
	}
	l, err := lockDir(ctx, dir, uopts.LockWait)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	log := logger(uopts.Logger)
	removeLeftovers(dir, log)
	defer func() {
		for _, in := range inputs {
			if in.Path != "" {
				os.Remove(in.Path)
			}
		}
	}()
	for i, in := range inputs {
		start := time.Now()
		fi, err := Fetch(ctx, in.Source, dir, fopts)
		if err != nil {
			return nil, err
		}
		inputs[i] = fi.Input()
		log.Info("downloaded advisories", "ecosystem", fi.Ecosystem, "url", fi.URL, "bytes", fi.Size,
			"verified", fi.Verified, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return update(ctx, dir, inputs, uopts)
}
