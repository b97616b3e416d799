package db

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func md5sum(b []byte) []byte { s := md5.Sum(b); return s[:] }

func crc32c(b []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// gcsHeaders sets the headers Google Cloud Storage sends with an object.
func gcsHeaders(h http.Header, body []byte) {
	h.Set("Content-Type", "application/zip")
	h.Set("Last-Modified", "Tue, 10 Nov 2026 10:00:00 GMT")
	h.Add("X-Goog-Hash", "crc32c="+b64(crc32c(body)))
	h.Add("X-Goog-Hash", "md5="+b64(md5sum(body)))
}

// serveBody answers with body and the headers set by hdr.
func serveBody(body []byte, hdr func(http.Header, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if hdr != nil {
			hdr(w.Header(), body)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	}
}

// truncate declares the whole body, sends half of it and closes the connection.
func truncate(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: %d\r\n\r\n", len(body))
		rw.Write(body[:len(body)/2])
		rw.Flush()
	}
}

// stall sends the headers and some of the body, then nothing until the test ends or the
// client goes away; with headers false it sends nothing at all.
func stall(t *testing.T, body []byte, headers bool) http.HandlerFunc {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	return func(w http.ResponseWriter, r *http.Request) {
		if headers {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:1000])
			w.(http.Flusher).Flush()
		}
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
}

// newServer serves handlers by ecosystem, at /<ecosystem>/all.zip; other paths are 404.
func newServer(t *testing.T, handlers map[string]http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for eco, h := range handlers {
			if r.URL.Path == "/"+eco+"/all.zip" {
				h(w, r)
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func readShared(t testing.TB, eco string) []byte {
	t.Helper()
	b, err := os.ReadFile(sharedZip(t, eco))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureZip returns a zip of one fixture directory.
func fixtureZip(t testing.TB, eco string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), eco, "all.zip")
	zipDir(t, filepath.Join(fixtures, eco), p)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFetch(t *testing.T) {
	goZip := readShared(t, "Go")
	small := fixtureZip(t, "Red Hat")
	tests := []struct {
		name      string
		eco       string
		handler   http.HandlerFunc
		base      string // default: the server
		client    *http.Client
		want      error
		message   string
		verified  []string
		lastMod   bool
		body      []byte
		fastIdle  bool
		wantQuick bool
	}{
		{name: "checksums of GCS", eco: "Go", handler: serveBody(goZip, gcsHeaders), verified: []string{"crc32c", "md5"}, lastMod: true, body: goZip},
		{name: "one x-goog-hash line and Content-MD5", eco: "Go", handler: serveBody(goZip, func(h http.Header, b []byte) {
			h.Set("X-Goog-Hash", "crc32c="+b64(crc32c(b))+",md5="+b64(md5sum(b)))
			h.Set("Content-MD5", b64(md5sum(b)))
		}), verified: []string{"crc32c", "md5"}, body: goZip},
		{name: "no checksums", eco: "Go", handler: serveBody(goZip, nil), body: goZip},
		{name: "ecosystem with a space", eco: "Red Hat", handler: serveBody(small, gcsHeaders), verified: []string{"crc32c", "md5"}, lastMod: true, body: small},
		{name: "wrong md5", eco: "Go", handler: serveBody(goZip, func(h http.Header, b []byte) {
			h.Set("X-Goog-Hash", "md5="+b64(md5sum(b[1:])))
		}), want: ErrIntegrity, message: "md5 x-goog-hash is"},
		{name: "wrong crc32c", eco: "Go", handler: serveBody(goZip, func(h http.Header, b []byte) {
			h.Set("X-Goog-Hash", "crc32c="+b64(crc32c(b[1:]))+", md5="+b64(md5sum(b)))
		}), want: ErrIntegrity, message: "crc32c x-goog-hash is"},
		{name: "wrong Content-MD5", eco: "Go", handler: serveBody(goZip, func(h http.Header, b []byte) {
			h.Set("Content-MD5", b64(md5sum(nil)))
		}), want: ErrIntegrity, message: "md5 Content-MD5 is"},
		{name: "two md5s that differ", eco: "Go", handler: serveBody(goZip, func(h http.Header, b []byte) {
			h.Set("X-Goog-Hash", "md5="+b64(md5sum(b)))
			h.Set("Content-MD5", b64(md5sum(nil)))
		}), want: ErrIntegrity, message: "two different md5"},
		{name: "malformed checksum", eco: "Go", handler: serveBody(goZip, func(h http.Header, b []byte) {
			h.Set("X-Goog-Hash", "md5=not-base64!")
		}), want: ErrIntegrity, message: "malformed x-goog-hash md5"},
		{name: "truncated body", eco: "Go", handler: truncate(goZip), want: ErrIntegrity, message: fmt.Sprintf("after %d of %d bytes", len(goZip)/2, len(goZip))},
		{name: "larger than the limit", eco: "Go", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(int64(MaxArchiveSize)+1))
			w.WriteHeader(http.StatusOK)
		}, want: ErrIntegrity, message: "more than the limit"},
		{name: "server error", eco: "Go", handler: status(http.StatusInternalServerError), message: "unexpected status 500 Internal Server Error"},
		{name: "unknown ecosystem", eco: "NoSuchEcosystem", want: ErrUnknownEcosystem, message: "404 Not Found"},
		{name: "stalled body", eco: "Go", handler: stall(t, goZip, true), fastIdle: true, want: ErrIdleTimeout, message: "idle timeout (200ms)", wantQuick: true},
		{name: "stalled before the headers", eco: "Go", handler: stall(t, goZip, false), fastIdle: true, want: ErrIdleTimeout, message: "idle timeout (200ms)", wantQuick: true},
		{name: "compressed by the server", eco: "Go", handler: serveBody(goZip, func(h http.Header, b []byte) { h.Set("Content-Encoding", "gzip") }), message: `Content-Encoding "gzip"`},
		{name: "redirect to plain HTTP elsewhere", eco: "Go", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://osv.example.com/Go/all.zip", http.StatusFound)
		}, message: "refusing redirect to http://osv.example.com/Go/all.zip"},
		{name: "redirect refused with a custom client", eco: "Go", client: &http.Client{Timeout: time.Minute}, handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://10.0.0.1/Go/all.zip", http.StatusMovedPermanently)
		}, message: "plain HTTP is allowed only to loopback hosts"},
		{name: "plain HTTP base elsewhere", eco: "Go", base: "http://osv.example.com/mirror", message: "plain HTTP is allowed only to loopback hosts"},
		{name: "base without a host", eco: "Go", base: "https:///x", message: "unsupported URL"},
		{name: "bad ecosystem name", eco: "../Go", handler: serveBody(goZip, nil), message: "invalid source name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var paths []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				paths = append(paths, r.URL.EscapedPath())
				mu.Unlock()
				if tc.handler != nil && r.URL.Path == "/"+tc.eco+"/all.zip" {
					tc.handler(w, r)
					return
				}
				http.NotFound(w, r)
			}))
			defer srv.Close()
			base := srv.URL
			if tc.base != "" {
				base = tc.base
			}
			dir := t.TempDir()
			opts := FetchOptions{BaseURL: base, HTTPClient: tc.client}
			if tc.fastIdle {
				opts.IdleTimeout = 200 * time.Millisecond
			}
			var lastDone, lastTotal int64
			opts.Progress = func(eco string, done, total int64) {
				if eco != tc.eco || done < lastDone {
					t.Errorf("progress %s %d after %d", eco, done, lastDone)
				}
				lastDone, lastTotal = done, total
			}
			start := time.Now()
			fi, err := Fetch(context.Background(), tc.eco, dir, opts)
			if tc.wantQuick && time.Since(start) > 5*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if tc.body == nil {
				if err == nil {
					t.Fatal("no error")
				}
				if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.message) {
					t.Errorf("error %q, want %v containing %q", err, tc.want, tc.message)
				}
				if tc.base == "" && tc.eco != "../Go" && !strings.Contains(err.Error(), srv.URL) {
					t.Errorf("error %q does not name the URL", err)
				}
				if files := dirFiles(t, dir); len(files) != 0 {
					t.Errorf("files left: %v", files)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(fi.Path)
			if err != nil || !bytes.Equal(got, tc.body) {
				t.Fatalf("file: %d bytes, %v", len(got), err)
			}
			sum := sha256.Sum256(tc.body)
			if fi.SHA256 != hex.EncodeToString(sum[:]) || fi.Size != int64(len(tc.body)) || !slices.Equal(fi.Verified, tc.verified) {
				t.Errorf("info %+v", fi)
			}
			mu.Lock()
			defer mu.Unlock()
			if wantURL := srv.URL + "/" + strings.ReplaceAll(tc.eco, " ", "%20") + "/all.zip"; fi.URL != wantURL || !slices.Equal(paths, []string{strings.TrimPrefix(wantURL, srv.URL)}) {
				t.Errorf("URL %s, requests %v", fi.URL, paths)
			}
			if tc.lastMod != !fi.LastModified.IsZero() {
				t.Errorf("last modified %v", fi.LastModified)
			}
			if lastDone != int64(len(tc.body)) || lastTotal != int64(len(tc.body)) {
				t.Errorf("progress ended at %d of %d", lastDone, lastTotal)
			}
			in := fi.Input()
			if in.Source != tc.eco || in.Origin != fi.URL || in.Path != fi.Path || in.SHA256 != fi.SHA256 || !in.AsOf.Equal(fi.LastModified) {
				t.Errorf("input %+v", in)
			}
		})
	}
}

// TestRefresh downloads the real Go and PyPI archives and imports them.
func TestRefresh(t *testing.T) {
	slow(t)
	goZip, pypiZip := readShared(t, "Go"), readShared(t, "PyPI")
	srv := newServer(t, map[string]http.HandlerFunc{"Go": serveBody(goZip, gcsHeaders), "PyPI": serveBody(pypiZip, gcsHeaders)})
	dir := t.TempDir()
	res, err := Refresh(context.Background(), dir, []string{"Go", "PyPI", "Go"}, FetchOptions{BaseURL: srv.URL + "/"}, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Updated, []string{"Go", "PyPI"}) {
		t.Errorf("updated %v", res.Updated)
	}
	goSrc, _ := res.Status.Source("Go")
	sum := sha256.Sum256(goZip)
	if goSrc.Records != 4274 || len(goSrc.Inputs) != 1 || goSrc.Inputs[0].Origin != srv.URL+"/Go/all.zip" || goSrc.Inputs[0].SHA256 != hex.EncodeToString(sum[:]) ||
		!goSrc.AsOf.Equal(time.Date(2026, 11, 10, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("Go source %+v", goSrc)
	}
	if files := dirFiles(t, dir); !slices.Equal(files, []string{FileName, lockName}) {
		t.Errorf("files %v", files)
	}
	d := mustOpen(t, dir)
	if ids := lookupIDs(t, d, "Go", "golang.org/x/text"); !slices.Contains(ids, "GO-2022-1059") {
		t.Errorf("lookup %v", ids)
	}
}

// TestFailedUpdateKeepsDatabase makes updates fail in every way a download or an import can;
// each time the previous database is left as it was, still usable, and nothing else is left.
func TestFailedUpdateKeepsDatabase(t *testing.T) {
	slow(t)
	goZip, pypiZip := readShared(t, "Go"), readShared(t, "PyPI")
	npmZip := fixtureZip(t, "npm")
	corrupt := bytes.Clone(pypiZip)
	for i := len(corrupt) / 3; i < len(corrupt)/3+64; i++ {
		corrupt[i] ^= 0x55
	}
	dir := t.TempDir()
	good := newServer(t, map[string]http.HandlerFunc{"Go": serveBody(goZip, gcsHeaders), "npm": serveBody(npmZip, gcsHeaders)})
	if _, err := Refresh(context.Background(), dir, []string{"Go", "npm"}, FetchOptions{BaseURL: good.URL}, UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := mustOpen(t, dir).Status()

	tests := []struct {
		name    string
		pypi    http.HandlerFunc
		ecos    []string
		cancel  bool // cancel the context once the import has read 1,000 records
		want    error
		message string
	}{
		{name: "wrong checksum", pypi: serveBody(pypiZip, func(h http.Header, b []byte) { h.Set("X-Goog-Hash", "md5="+b64(md5sum(nil))) }), want: ErrIntegrity},
		{name: "truncated", pypi: truncate(pypiZip), want: ErrIntegrity},
		{name: "corrupt zip", pypi: serveBody(corrupt, gcsHeaders), message: "invalid OSV archive"},
		{name: "server error", pypi: status(http.StatusInternalServerError), message: "500"},
		{name: "unknown ecosystem", ecos: []string{"npm", "Nope"}, want: ErrUnknownEcosystem},
		{name: "stalled", pypi: stall(t, pypiZip, true), want: ErrIdleTimeout, message: "idle timeout"},
		{name: "interrupted import", pypi: serveBody(pypiZip, gcsHeaders), ecos: []string{"PyPI", "npm"}, cancel: true, want: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			handlers := map[string]http.HandlerFunc{"Go": serveBody(goZip, gcsHeaders), "npm": serveBody(npmZip, gcsHeaders)}
			if tc.pypi != nil {
				handlers["PyPI"] = tc.pypi
			}
			srv := newServer(t, handlers)
			ecos := tc.ecos
			if ecos == nil {
				ecos = []string{"npm", "PyPI"} // the first one downloads fine
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := UpdateOptions{}
			if tc.cancel {
				opts.Progress = func(_ string, n int) {
					if n == 1000 {
						cancel()
					}
				}
			}
			_, err := Refresh(ctx, dir, ecos, FetchOptions{BaseURL: srv.URL, IdleTimeout: 200 * time.Millisecond}, opts)
			if err == nil {
				t.Fatal("no error")
			}
			if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q, want %v containing %q", err, tc.want, tc.message)
			}
			if files := dirFiles(t, dir); !slices.Equal(files, []string{FileName, lockName}) {
				t.Errorf("files left: %v", files)
			}
			d := mustOpen(t, dir)
			if !reflect.DeepEqual(d.Status(), before) {
				t.Errorf("status changed:\n%+v\n%+v", d.Status(), before)
			}
			if ids := lookupIDs(t, d, "Go", "golang.org/x/text"); !slices.Contains(ids, "GO-2022-1059") {
				t.Errorf("lookup %v", ids)
			}
			if ids := lookupIDs(t, d, "PyPI", "requests"); len(ids) != 0 {
				t.Errorf("PyPI data got in: %v", ids)
			}
		})
	}

	// A local import that fails half-way through its inputs changes nothing either.
	_, err := Update(context.Background(), dir, []Input{{Path: sharedZip(t, "PyPI")}, {Path: filepath.Join(fixtures, "README.txt")}}, UpdateOptions{})
	if err == nil || !strings.Contains(err.Error(), "README.txt") {
		t.Errorf("error %v", err)
	}
	if d := mustOpen(t, dir); !reflect.DeepEqual(d.Status(), before) {
		t.Error("status changed")
	}
}

// TestInstall installs a database built elsewhere, and refuses a damaged one.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "npm")}}, UpdateOptions{})
	reader := mustOpen(t, dir)

	other := t.TempDir()
	mustUpdate(t, other, []Input{{Path: filepath.Join(fixtures, "Maven")}}, UpdateOptions{})
	pulled := filepath.Join(t.TempDir(), "db-pull-1.db")
	data, _ := os.ReadFile(filepath.Join(other, FileName))

	// Damaged: refused, the file left to the caller, the database unchanged.
	bad := bytes.Clone(data)
	copy(bad[len(bad)-4096:], bytes.Repeat([]byte{0xff}, 4096))
	os.WriteFile(pulled, bad[:len(bad)-4096], 0o600)
	if _, err := Install(context.Background(), dir, pulled, UpdateOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("installing a damaged file: %v", err)
	}
	if _, err := os.Stat(pulled); err != nil {
		t.Errorf("the refused file is gone: %v", err)
	}
	if ids := lookupIDs(t, mustOpen(t, dir), "npm", "lodash"); len(ids) != 1 {
		t.Errorf("database changed: %v", ids)
	}

	os.WriteFile(pulled, data, 0o600)
	st, err := Install(context.Background(), dir, pulled, UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Path != filepath.Join(dir, FileName) || len(st.Sources) != 1 || st.Sources[0].Name != "Maven" {
		t.Errorf("status %+v", st)
	}
	if _, err := os.Stat(pulled); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the installed file is still there: %v", err)
	}
	if files := dirFiles(t, dir); !slices.Equal(files, []string{FileName, lockName}) {
		t.Errorf("files %v", files)
	}
	d := mustOpen(t, dir)
	if ids := lookupIDs(t, d, "Maven", "org.apache.logging.log4j:log4j-core"); len(ids) != 1 {
		t.Errorf("installed database: %v", ids)
	}
	// A scan that had the old database open still reads it.
	if ids := lookupIDs(t, reader, "npm", "lodash"); len(ids) != 1 {
		t.Errorf("old reader: %v", ids)
	}
}

// TestFetchURL keeps passwords of mirror URLs out of what Fetch reports and stores.
func TestFetchURL(t *testing.T) {
	body := fixtureZip(t, "npm")
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		auth.Store(u + ":" + p)
		if r.URL.Path != "/osv/npm/all.zip" {
			http.NotFound(w, r)
			return
		}
		serveBody(body, gcsHeaders)(w, r)
	}))
	defer srv.Close()
	base := strings.Replace(srv.URL, "http://", "http://mirror:s3cret@", 1) + "/osv/"
	fi, err := Fetch(context.Background(), "npm", t.TempDir(), FetchOptions{BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	if auth.Load() != "mirror:s3cret" {
		t.Errorf("credentials sent: %v", auth.Load())
	}
	if strings.Contains(fi.URL, "s3cret") || !strings.HasSuffix(fi.URL, "/osv/npm/all.zip") {
		t.Errorf("URL %s", fi.URL)
	}
	_, err = Fetch(context.Background(), "Nope", t.TempDir(), FetchOptions{BaseURL: base})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v", err)
	}
	for _, bad := range []string{srv.URL + "/?token=1", "ftp://" + strings.TrimPrefix(srv.URL, "http://"), "://"} {
		if _, err := Fetch(context.Background(), "npm", t.TempDir(), FetchOptions{BaseURL: bad}); err == nil {
			t.Errorf("base %s: no error", bad)
		}
	}
}
