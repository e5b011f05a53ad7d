package harness

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// ImageEntry is one file system entry of an image layer built by WriteOCIImages. Build it
// with DirEntry, FileEntry, SymlinkEntry or HardlinkEntry.
type ImageEntry struct {
	Path     string // inside the image, without a leading slash ("bin/sh")
	Mode     int64  // permission bits (with 01000 sticky, 04000 setuid)
	UID, GID int
	Body     []byte // regular files
	Symlink  string // symbolic link target
	Hardlink string // hard link target: the Path of a regular file earlier in the same layer
	Dir      bool
}

// DirEntry is a directory owned by root.
func DirEntry(p string, mode int64) ImageEntry { return ImageEntry{Path: p, Mode: mode, Dir: true} }

// FileEntry is a regular file owned by root.
func FileEntry(p string, mode int64, body []byte) ImageEntry {
	return ImageEntry{Path: p, Mode: mode, Body: body}
}

// SymlinkEntry is a symbolic link p -> target.
func SymlinkEntry(p, target string) ImageEntry {
	return ImageEntry{Path: p, Mode: 0o777, Symlink: target}
}

// HardlinkEntry is a hard link p to the regular file target of the same layer.
func HardlinkEntry(p, target string) ImageEntry {
	return ImageEntry{Path: p, Mode: 0o755, Hardlink: target}
}

// ImageLayer is an uncompressed layer: its entries in order (parents before children).
type ImageLayer []ImageEntry

// ImageConfig is the part of an OCI image config that runtimes read.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string
	WorkingDir string
}

// OCIImage is one image of an image-layout tarball written by WriteOCIImages.
type OCIImage struct {
	Name   string // full reference, e.g. "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	Layers []ImageLayer
	Config ImageConfig
}

func (l ImageLayer) tar() ([]byte, error) {
	entries := make([]tarEntry, 0, len(l))
	for _, e := range l {
		name := strings.TrimPrefix(path.Clean(e.Path), "/")
		te := tarEntry{name: name, mode: e.Mode, uid: e.UID, gid: e.GID}
		switch {
		case e.Dir:
			te.typ, te.name = tar.TypeDir, name+"/"
		case e.Symlink != "":
			te.typ, te.link = tar.TypeSymlink, e.Symlink
		case e.Hardlink != "":
			te.typ, te.link = tar.TypeLink, strings.TrimPrefix(path.Clean(e.Hardlink), "/")
		default:
			te.typ, te.body = tar.TypeReg, e.Body
		}
		entries = append(entries, te)
	}
	var buf bytes.Buffer
	if err := writeTar(&buf, entries); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteOCIImages writes an OCI image-layout tarball holding images for linux/arch, in the
// format ImageTar uses: uncompressed layers, one manifest per image in index.json, each
// annotated with io.containerd.image.name so that `ctr images import` names it. Layers and
// configs shared by several images are stored once. The output is deterministic.
func WriteOCIImages(w io.Writer, arch string, images ...OCIImage) error {
	blobs := map[string][]byte{}
	var order []string
	add := func(mediaType string, b []byte) descriptor {
		d, p := blob(mediaType, b)
		if _, ok := blobs[p]; !ok {
			blobs[p] = b
			order = append(order, p)
		}
		return d
	}
	var manifests []descriptor
	for _, img := range images {
		var layers []descriptor
		var diffIDs []string
		for _, l := range img.Layers {
			b, err := l.tar()
			if err != nil {
				return fmt.Errorf("image %s: %w", img.Name, err)
			}
			d := add(mediaTypeLayer, b)
			layers = append(layers, d)
			diffIDs = append(diffIDs, d.Digest) // uncompressed: diff id = layer digest
		}
		cfg := map[string]any{"Env": img.Config.Env, "WorkingDir": img.Config.WorkingDir}
		if img.Config.Entrypoint != nil {
			cfg["Entrypoint"] = img.Config.Entrypoint
		}
		if img.Config.Cmd != nil {
			cfg["Cmd"] = img.Config.Cmd
		}
		if img.Config.User != "" {
			cfg["User"] = img.Config.User
		}
		config, err := json.Marshal(map[string]any{
			"created":      imageTime.Format(time.RFC3339),
			"architecture": arch,
			"os":           "linux",
			"config":       cfg,
			"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
			"history":      []map[string]any{{"created": imageTime.Format(time.RFC3339), "created_by": "isoguard integration harness"}},
		})
		if err != nil {
			return err
		}
		configDesc := add(mediaTypeConfig, config)
		manifest, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     mediaTypeManifest,
			"config":        configDesc,
			"layers":        layers,
		})
		if err != nil {
			return err
		}
		md := add(mediaTypeManifest, manifest)
		md.Platform = &platform{Architecture: arch, OS: "linux"}
		md.Annotations = map[string]string{"io.containerd.image.name": img.Name}
		if _, tag, ok := strings.Cut(path.Base(img.Name), ":"); ok {
			md.Annotations["org.opencontainers.image.ref.name"] = tag
		}
		manifests = append(manifests, md)
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeIndex,
		"manifests":     manifests,
	})
	if err != nil {
		return err
	}
	entries := []tarEntry{
		{name: "oci-layout", typ: tar.TypeReg, mode: 0o644, body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", typ: tar.TypeReg, mode: 0o644, body: index},
		{name: "blobs/", typ: tar.TypeDir, mode: 0o755},
		{name: "blobs/sha256/", typ: tar.TypeDir, mode: 0o755},
	}
	for _, p := range order {
		entries = append(entries, tarEntry{name: p, typ: tar.TypeReg, mode: 0o644, body: blobs[p]})
	}
	var buf bytes.Buffer
	if err := writeTar(&buf, entries); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}
