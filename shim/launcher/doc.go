// Package launcher starts the pod's sandbox VM for the shim's task
// service: it adapts runtime/sandbox to the task service's own interfaces
// (task.Launcher, task.PodVM) and decides which configuration a sandbox
// runs with (the shim's config file, a container's runtime option
// ConfigPath, then its io.veil.config.* annotations).
package launcher
