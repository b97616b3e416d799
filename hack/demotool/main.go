// Command demotool does the two things `make demo` needs that moat itself does not: pick a free
// loopback port for the demo's registry, and push the sample image's OCI layout to it.
//
//	demotool freeport            prints a free TCP port on 127.0.0.1
//	demotool push LAYOUT REF     pushes the single image of the OCI layout LAYOUT to REF
package main

import (
	"fmt"
	"net"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moatsec/moat/internal/image"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demotool:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 1 && args[0] == "freeport":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		return nil
	case len(args) == 3 && args[0] == "push":
		return push(args[1], args[2])
	}
	return fmt.Errorf("usage: demotool freeport | demotool push LAYOUT REF")
}

func push(dir, ref string) error {
	r, err := image.ParseReference(ref, true)
	if err != nil {
		return err
	}
	if !image.IsLoopbackHost(r.Context().RegistryStr()) {
		return fmt.Errorf("%s: the demo pushes only to a registry on loopback", ref)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(m.Manifests) != 1 {
		return fmt.Errorf("%s: %d manifests, want one image", dir, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return err
	}
	tag, ok := r.(name.Tag)
	if !ok {
		return fmt.Errorf("%s: push to a tag", ref)
	}
	return remote.Write(tag, img, remote.WithTransport(image.Transport()))
}
