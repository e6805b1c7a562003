package container

import "context"

// Runtime is a node's container runtime as the Reporter and the Migrator
// use it: LXC or Podman.
type Runtime interface {
	// Kind names the runtime in reports ("lxc", "podman").
	Kind() string
	// NodeArch is the node's ISA (a container runs the node's).
	NodeArch() string
	// List returns the running (or frozen) containers.
	List(ctx context.Context) ([]Container, error)
	// Get describes one container; ErrUnknown when the node has none of
	// that name.
	Get(ctx context.Context, name string) (Container, error)
	// State is RUNNING, FROZEN, STOPPED, ...; ErrUnknown as Get.
	State(ctx context.Context, name string) (string, error)
	// Has reports whether a container of that name exists here, in any
	// state (a destination refuses to receive over it).
	Has(ctx context.Context, name string) (bool, error)
	// Trees are the directories that travel with the images, by archive
	// prefix: on the source, what to send; on the destination, where it
	// goes (LXC: the container's directory; Podman: none, its export holds
	// the root file system's changes).
	Trees(name string) map[string]string
	// Dump checkpoints a running container into img and stops it; a failed
	// dump leaves it running. criuOpts are CRIU config lines (lazy pages,
	// page server, parent images), only where Limits allow.
	Dump(ctx context.Context, name, img, work string, criuOpts ...string) error
	// Received fixes up the trees on the destination; sourceDir is the
	// source's Trees(name)["ct"].
	Received(name, sourceDir string) error
	// Restore starts a container from the images received in img.
	Restore(ctx context.Context, name, img, work string, criuOpts ...string) error
	// Recover restarts a container on the source from its own dump after
	// a failed migration.
	Recover(ctx context.Context, name, img, work string) error
	// Discard removes what a failed receive left of a container that
	// never ran here.
	Discard(ctx context.Context, name string)
	// Destroy removes a container that was migrated away.
	Destroy(ctx context.Context, name string) error
	// Limits say why this runtime cannot migrate with post-copy or with
	// pre-copy, "" when it can (where the kernel can): both need Dump and
	// Restore to pass criuOpts to CRIU.
	Limits() (noLazy, noDirty string)
	// InitPID is the host PID of the container's init (pre-dump rounds
	// run CRIU on it directly).
	InitPID(ctx context.Context, name string) (int, error)
}

// imageRuntime is a runtime whose containers need their image on the
// destination (Podman: a restore would otherwise try to pull it).
type imageRuntime interface {
	// Image is the image a container runs (a name when it has one).
	Image(ctx context.Context, name string) (string, error)
	HasImage(ctx context.Context, ref string) bool
	SaveImage(ctx context.Context, ref, file string) error
	LoadImage(ctx context.Context, file string) error
}
