module github.com/veil-runtime/veil

go 1.26.6
