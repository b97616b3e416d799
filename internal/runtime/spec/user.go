package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// user is the resolved identity of the container process.
type user struct {
	uid, gid uint32
	groups   []uint32 // supplementary groups, from /etc/group
	home     string   // from /etc/passwd; "" when the user has no entry
}

// passwdEntry and groupEntry are the fields of /etc/passwd and /etc/group lines moat uses.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// maxAccountFile bounds what is read of /etc/passwd and /etc/group: they come from the image.
const maxAccountFile = 4 << 20

// resolveUser turns an image or --user value (user, uid, user:group, uid:gid, or any mix) into
// IDs, reading etc/passwd and etc/group of files when a name must be looked up or when the
// user's primary group and supplementary groups are wanted. files may be nil (no lookups: only
// numeric values work). Every resulting ID must lie inside the container's ID range.
func resolveUser(spec string, files fs.FS, size uint32) (user, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" {
		if hasGroup {
			return user{}, fmt.Errorf("%w: user %q names a group but no user", ErrInvalid, spec)
		}
		name = "0"
	}
	if hasGroup && group == "" {
		return user{}, fmt.Errorf("%w: user %q has an empty group", ErrInvalid, spec)
	}
	passwd, perr := readAccounts(files, "etc/passwd", parsePasswd)
	groups, gerr := readAccounts(files, "etc/group", parseGroup)

	var u user
	var entry *passwdEntry
	if id, ok := parseID(name); ok {
		u.uid = id
		for i := range passwd {
			if passwd[i].uid == id {
				entry = &passwd[i]
				break
			}
		}
	} else {
		if perr != nil {
			return user{}, fmt.Errorf("%w %q: %v", ErrUnknownUser, name, perr)
		}
		for i := range passwd {
			if passwd[i].name == name {
				entry = &passwd[i]
				break
			}
		}
		if entry == nil {
			return user{}, fmt.Errorf("%w %q: no such user in the image's /etc/passwd", ErrUnknownUser, name)
		}
		u.uid = entry.uid
	}
	if entry != nil {
		u.gid = entry.gid
		u.home = entry.home
	}
	if hasGroup {
		if id, ok := parseID(group); ok {
			u.gid = id
		} else {
			if gerr != nil {
				return user{}, fmt.Errorf("%w: group %q: %v", ErrUnknownUser, group, gerr)
			}
			found := false
			for _, g := range groups {
				if g.name == group {
					u.gid, found = g.gid, true
					break
				}
			}
			if !found {
				return user{}, fmt.Errorf("%w: group %q is not in the image's /etc/group", ErrUnknownUser, group)
			}
		}
	} else if entry != nil {
		// Supplementary groups only when the group was not given, as Docker does: --user
		// uid:gid asks for exactly that identity.
		seen := map[uint32]bool{u.gid: true}
		for _, g := range groups {
			for _, m := range g.members {
				if m == entry.name && !seen[g.gid] {
					seen[g.gid] = true
					u.groups = append(u.groups, g.gid)
				}
			}
		}
	}
	for _, id := range append([]uint32{u.uid, u.gid}, u.groups...) {
		if id >= size {
			return user{}, fmt.Errorf("%w: user %q resolves to ID %d, outside the container's ID range 0-%d", ErrInvalid, spec, id, size-1)
		}
	}
	return u, nil
}

// parseID reads a decimal user or group ID.
func parseID(s string) (uint32, bool) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 { // (uid_t)-1 means "no change" to the kernel
		return 0, false
	}
	return uint32(n), true
}

// readAccounts reads and parses one account file of files; a missing file is an error that
// says so (so "no such user" can explain itself), and so is a nil files.
func readAccounts[T any](files fs.FS, name string, parse func([]byte) []T) ([]T, error) {
	if files == nil {
		return nil, fmt.Errorf("the root filesystem is not available to look up /%s", name)
	}
	f, err := files.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the image has no /%s", name)
		}
		return nil, fmt.Errorf("reading /%s of the image: %v", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAccountFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading /%s of the image: %v", name, err)
	}
	if len(data) > maxAccountFile {
		return nil, fmt.Errorf("/%s of the image is larger than %d bytes", name, maxAccountFile)
	}
	return parse(data), nil
}

// parsePasswd reads name:password:uid:gid:gecos:home:shell lines, skipping any line it cannot
// read (comments, NIS "+" entries, garbage) rather than failing: an image's file is untrusted
// and only the entry asked for matters.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	eachLine(data, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if f[0] == "" || !ok1 || !ok2 {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) >= 6 {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out
}

// parseGroup reads name:password:gid:member,member lines, skipping what it cannot read.
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	eachLine(data, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, ok := parseID(f[2])
		if f[0] == "" || !ok {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) >= 4 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.members = append(e.members, m)
				}
			}
		}
		out = append(out, e)
	})
	return out
}

func eachLine(data []byte, fn func([]string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxAccountFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}
