module sluice.test/guests

go 1.24

require github.com/sluicehq/sluice/sdk v0.0.0

replace github.com/sluicehq/sluice/sdk => ../../../../../sdk
