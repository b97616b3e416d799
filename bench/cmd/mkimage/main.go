// Command mkimage assembles moat's sample and benchmark images with go-containerregistry: a
// root filesystem tarball as the base layer, an application directory as the second layer and,
// optionally, a padding layer of incompressible files to make a large image. It writes an OCI
// layout and a docker save archive.
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	rootfs := flag.String("rootfs", "", "base layer: a tar of a root filesystem")
	app := flag.String("app", "", "application layer: a directory whose tree is added at /")
	pad := flag.Int64("pad", 0, "add a layer of this many bytes of incompressible files")
	oci := flag.String("oci", "", "write an OCI layout to this directory")
	docker := flag.String("docker", "", "write a docker save archive to this file")
	tag := flag.String("tag", "moat.test/sample:latest", "tag in the docker archive")
	flag.Parse()
	if err := run(*rootfs, *app, *pad, *oci, *docker, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(rootfs, app string, pad int64, oci, docker, tag string) error {
	if rootfs == "" || (oci == "" && docker == "") {
		return fmt.Errorf("need -rootfs and at least one of -oci, -docker")
	}
	created := v1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	add := func(l v1.Layer, by string) error {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer, History: v1.History{CreatedBy: by, Created: created}})
		return err
	}
	base, err := tarball.LayerFromFile(rootfs)
	if err != nil {
		return err
	}
	if err := add(base, "debootstrap --variant=minbase bookworm"); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if app != "" {
		p := filepath.Join(tmp, "app.tar")
		if err := tarDir(app, p); err != nil {
			return fmt.Errorf("archiving %s: %w", app, err)
		}
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			return err
		}
		if err := add(l, "COPY app/ /"); err != nil {
			return err
		}
	}
	if pad > 0 {
		p := filepath.Join(tmp, "pad.tar")
		if err := padTar(p, pad); err != nil {
			return err
		}
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			return err
		}
		if err := add(l, fmt.Sprintf("COPY data/ /data/ # %d bytes", pad)); err != nil {
			return err
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", "amd64", created
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{"/usr/local/bin/sample-app"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	if oci != "" {
		os.RemoveAll(oci)
		lp, err := layout.Write(oci, empty.Index)
		if err != nil {
			return err
		}
		if err := lp.AppendImage(img); err != nil {
			return fmt.Errorf("writing OCI layout: %w", err)
		}
	}
	if docker != "" {
		ref, err := name.NewTag(tag)
		if err != nil {
			return err
		}
		if err := tarball.WriteToFile(docker, ref, img); err != nil {
			return fmt.Errorf("writing docker archive: %w", err)
		}
	}
	return nil
}

// tarDir archives a directory tree as root-owned entries relative to /.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name, h.Uid, h.Gid, h.Uname, h.Gname = filepath.ToSlash(rel), 0, 0, "", ""
		h.ModTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			if _, err := io.Copy(tw, src); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// padTar writes size bytes of pseudo-random (incompressible) data as 64 MiB files.
func padTar(out string, size int64) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	rng := rand.New(rand.NewSource(1))
	for i := 0; size > 0; i++ {
		n := min(size, 64<<20)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/blob-%03d.bin", i), Mode: 0o644, Size: n, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, rng, n); err != nil {
			return err
		}
		size -= n
	}
	return tw.Close()
}
