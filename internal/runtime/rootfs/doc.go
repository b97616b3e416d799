// Package rootfs makes container root filesystems: a content-addressed cache of unpacked image
// layers shared by every container and moat process on the host (Cache), the safe unpacker
// that fills it from untrusted tar streams (Unpack), and the overlayfs assembly of a
// container's root filesystem from cached layers plus a writable layer of its own (Mount,
// Unmount, Remove).
//
// # The cache
//
// A layer lives in DIR/layers/sha256/KEY/fs, KEY being the hex of its blob digest (plus
// -UID-GID-SIZE when unpacked with a shifted IDMap). It is unpacked into
// DIR/layers/sha256/.tmp-KEY-RANDOM, flushed to disk (syncfs), renamed into place and the
// rename flushed: a layer directory exists only when complete, so a crash leaves at most a
// .tmp- directory, which is never used and is removed by the next unpack of that layer (or by
// Sweep). Unpackers of one layer, in any process, serialise on an flock of
// DIR/locks/KEY.lock and re-check after taking it, so a layer is unpacked once; a second
// container of an image unpacks nothing. The cache does not use moat's bbolt store: the store
// is held open by one process at a time, while the filesystem's rename is atomic and shared.
// DIR/layers is mode 0700: under the identity map cached layers hold setuid-root binaries that
// no other host user may reach.
//
// The cache is keyed by the digest of the layer's blob, the one digest of a layer that is
// checked as it is read (image.Layer.Open verifies it at the blob's end, and the blob is pinned
// by the manifest). The diffID that the image config names for the uncompressed tar is not
// trusted for anything: keyed by it, the cache would have to hash every uncompressed tar a
// second time (a third of a first run's CPU on a machine without SHA instructions), or an
// image could claim a popular base layer's diffID to plant its own files under it, or name a
// cached diffID to be handed another image's files (another tenant's private layer) without
// holding them. Keyed by the blob, a layer's directory holds what its key names and nothing
// else can reach it. The cost: one tar stored as two blobs (gzip and zstd, or compressed in a
// registry and plain in a docker save archive) is unpacked twice. Reading, decompressing and
// unpacking run in separate goroutines.
//
// # What Unpack writes
//
// Every path is resolved inside the layer directory one component at a time, without following
// symbolic links (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV), and the last component is created with *at calls that do not follow it
// either. So:
//
//   - names are read relative to the layer root, absolute ones included; a name or hard link
//     target with a ".." component fails the layer (ErrUnsafe): no tool that writes layers
//     makes one, so it is refused rather than resolved;
//   - an entry whose parent path holds a symbolic link (absolute or relative, from this layer)
//     fails the layer (ErrUnsafe): layers made from a filesystem never have one, and following
//     it is how tar extraction escapes;
//   - symbolic link targets are stored as written and never followed here; they resolve inside
//     the container;
//   - a hard link's target must be a regular file or symbolic link of the same layer, reached
//     the same way; linkat never follows a symbolic link;
//   - a later entry replaces an earlier one of the same name (a file replaces a directory and
//     the other way round; two directories merge, the later metadata winning), always as a
//     new inode, so replacing a file never writes through its hard links or a symbolic link;
//   - character and block devices and named pipes are not created, and are counted in Stats
//     (a hard link to one is skipped too). Devices would give a container host devices, and a
//     pipe in the cache blocks any host tool that opens it; a container that needs one makes
//     it at run time. The one device node created is the overlayfs whiteout below;
//   - modes are kept, setuid, setgid and sticky bits included: the container's user namespace,
//     no_new_privs and its empty capability sets bound what a setuid binary gains. Ownership is
//     the tar's uid and gid, or shifted by an IDMap (for user namespaces without idmapped
//     mounts); an owner outside the map's range fails the layer. chown is done before chmod,
//     as chown clears the setuid bits. Times are kept (directories' at the end, as creating
//     children changes them);
//   - extended attributes: user.* (except user.overlay.*, which overlayfs reads in userxattr
//     mode) and security.capability are applied, the latter as a revision 3 value whose root
//     ID is the container root's host ID under a shifted map, so that file capabilities work
//     inside the container's user namespace and nowhere else. trusted.* (overlayfs's own
//     redirect, metacopy and opaque attributes among them), other security.* labels and ACLs
//     are not applied, and are counted. The filesystem refusing an attribute is counted, not
//     fatal;
//   - OCI whiteouts become overlayfs whiteouts, as root in the initial user namespace mounts
//     them: .wh.NAME becomes a 0/0 character device NAME, and .wh..wh..opq marks its directory
//     with trusted.overlay.opaque=y (set after the whole layer, so the marker's position in the
//     tar does not matter). Other .wh..wh.* names (aufs metadata) are skipped. A 0/0 character
//     device in the tar itself is a device like any other and is skipped;
//   - Limits bound the tar stream's size, the files' total size (sparse entries included), the
//     number of entries and inodes (implied parent directories count), name and link target
//     lengths, and the expansion ratio over the compressed size. Nothing follows a link, so a
//     symbolic or hard link loop cannot make anything loop.
//
// # The root filesystem
//
// Mount stacks the layer directories with overlayfs under CONTAINER/upper and CONTAINER/work
// and mounts the result, nodev, on CONTAINER/rootfs (an OCI bundle's root). It uses the mount
// API with one lowerdir+ per layer, so mount(2)'s one-page option string does not bound the
// number of layers (overlayfs itself stacks at most 500); layers are passed as descriptors
// where the kernel takes them (Linux 6.13), as paths on 6.8 to 6.12, and through mount(2) on
// older kernels, whose page limit is then reported as such. overlayfs never follows
// redirect_dir or metacopy attributes here. For user namespaces Mount either takes layers
// unpacked with the container's IDMap (WithIDMap) or mounts identity-unpacked layers
// idmapped (WithIDMappedLayers), so that one cached copy serves every mapping. Remove unmounts
// and deletes everything Mount made, refusing to delete through a mount that would not go.
package rootfs
