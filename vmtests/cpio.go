package vmtests

import (
	"fmt"
	"io"
)

// File type bits of a cpio mode field, as in stat(2).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// cpioWriter writes an archive in the "newc" (SVR4, no checksum) format that
// the kernel unpacks as an initramfs. Every entry gets its own inode number
// and a zero timestamp, so equal inputs give byte-identical archives.
type cpioWriter struct {
	w       io.Writer
	nextIno uint32
	written int64
}

// newCPIOWriter returns a writer that emits the archive to w.
func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, nextIno: 1}
}

// header writes one entry header and its name, padded to four bytes.
func (c *cpioWriter) header(name string, mode uint32, nlink uint32, size int64, rdevMajor, rdevMinor uint32) error {
	if size > 0xffffffff {
		return fmt.Errorf("cpio: %s: %d bytes is too large for newc", name, size)
	}
	ino := c.nextIno
	c.nextIno++
	if name == "TRAILER!!!" {
		ino = 0
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if err := c.write([]byte(hdr + name + "\x00")); err != nil {
		return err
	}
	return c.pad()
}

// write writes b and counts it.
func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.written += int64(n)
	return err
}

// pad writes zero bytes up to the next multiple of four.
func (c *cpioWriter) pad() error {
	if r := c.written % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) error {
	return c.header(name, modeDir|perm, 2, 0, 0, 0)
}

// File adds a regular file of the given size whose content is read from r.
func (c *cpioWriter) File(name string, perm uint32, size int64, r io.Reader) error {
	if err := c.header(name, modeRegular|perm, 1, size, 0, 0); err != nil {
		return err
	}
	n, err := io.CopyN(c.w, r, size)
	c.written += n
	if err != nil {
		return fmt.Errorf("cpio: %s: %w", name, err)
	}
	return c.pad()
}

// Symlink adds a symbolic link pointing at target.
func (c *cpioWriter) Symlink(name, target string) error {
	if err := c.header(name, modeSymlink|0o777, 1, int64(len(target)), 0, 0); err != nil {
		return err
	}
	if err := c.write([]byte(target)); err != nil {
		return err
	}
	return c.pad()
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) error {
	return c.header(name, modeCharDev|perm, 1, 0, major, minor)
}

// Close writes the trailer entry that ends the archive.
func (c *cpioWriter) Close() error {
	return c.header("TRAILER!!!", 0, 1, 0, 0, 0)
}
