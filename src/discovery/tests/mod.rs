//! Integration tests: real files in temp directories, real inotify.
