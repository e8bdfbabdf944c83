package jsonfield

import "testing"

var benchDoc = []byte(`{"specversion":"1.0","id":"orders-0-000001","source":"bench","type":"order.created","time":"2026-01-02T03:04:05Z","data":{"order":1,"name":"ada lovelace","region":"eu-west-1","amount":123.45,"items":[1,2,3]}}`)

func BenchmarkGet(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := GetString(benchDoc, "data", "name"); !ok {
			b.Fatal("not found")
		}
	}
}

func BenchmarkSet(b *testing.B) {
	b.ReportAllocs()
	dst := make([]byte, 0, 512)
	for b.Loop() {
		var err error
		if _, err = Set(dst, benchDoc, []byte(`"ADA LOVELACE"`), "data", "name_upper"); err != nil {
			b.Fatal(err)
		}
	}
}
