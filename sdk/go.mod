module github.com/sluicehq/sluice/sdk

go 1.24
