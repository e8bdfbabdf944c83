package pattern

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// matchCase is one conformance vector: a pattern (JSON text), an event and
// the expected outcome. Cases marked spec come from the example tables of
// the pattern language's contract (Alibaba's and AWS's documented examples,
// docs/filters.md), in the order of its sections.
type matchCase struct {
	name    string
	pattern string
	event   string
	want    bool
}

var specCases = []matchCase{
	// 3.1 exact values
	{"3.1 one of two strings", `{"data":{"severity":["high","critical"]}}`, `{"data":{"severity":"critical"}}`, true},
	{"3.1 case-sensitive", `{"data":{"severity":["high"]}}`, `{"data":{"severity":"High"}}`, false},
	{"3.1 string vs number", `{"data":{"retries":[2]}}`, `{"data":{"retries":"2"}}`, false},
	{"3.1 null", `{"data":{"refund":[null]}}`, `{"data":{"refund":null}}`, true},
	{"3.1 empty string vs null", `{"data":{"refund":[""]}}`, `{"data":{"refund":null}}`, false},
	// 3.2 prefix
	{"3.2 prefix", `{"data":{"filename":[{"prefix":"logs/"}]}}`, `{"data":{"filename":"logs/a.gz"}}`, true},
	{"3.2 prefix case-sensitive", `{"data":{"filename":[{"prefix":"logs/"}]}}`, `{"data":{"filename":"LOGS/a.gz"}}`, false},
	{"3.2 prefix on number", `{"data":{"zip":[{"prefix":"31"}]}}`, `{"data":{"zip":31000}}`, false},
	// 3.3 suffix
	{"3.3 suffix any of two", `{"data":{"filename":[{"suffix":".csv"},{"suffix":".tsv"}]}}`, `{"data":{"filename":"x.tsv"}}`, true},
	{"3.3 suffix not at end", `{"data":{"filename":[{"suffix":".csv"}]}}`, `{"data":{"filename":"x.csv.bak"}}`, false},
	{"3.3 suffix ignore case", `{"data":{"filename":[{"suffix":{"equals-ignore-case":".CSV"}}]}}`, `{"data":{"filename":"x.csv"}}`, true},
	// 3.4 contains
	{"3.4 contains", `{"type":[{"contains":"Warn"}]}`, `{"type":"disk.WarnEvent"}`, true},
	{"3.4 contains case-sensitive", `{"type":[{"contains":"Warn"}]}`, `{"type":"disk.warning"}`, false},
	// 3.5 equals-ignore-case
	{"3.5 equals-ignore-case", `{"data":{"country":[{"equals-ignore-case":"cn"}]}}`, `{"data":{"country":"CN"}}`, true},
	{"3.5 equals-ignore-case whole value", `{"data":{"country":[{"equals-ignore-case":"cn"}]}}`, `{"data":{"country":"CHN"}}`, false},
	// 3.6 wildcard
	{"3.6 wildcard", `{"data":{"filename":[{"wildcard":"logs/*/app-*.gz"}]}}`, `{"data":{"filename":"logs/2024/app-1.gz"}}`, true},
	{"3.6 wildcard needs the middle", `{"data":{"filename":[{"wildcard":"logs/*/app-*.gz"}]}}`, `{"data":{"filename":"logs/app-1.gz"}}`, false},
	// 3.7 anything-but
	{"3.7 anything-but list", `{"data":{"stage":[{"anything-but":["test","dev"]}]}}`, `{"data":{"stage":"prod"}}`, true},
	{"3.7 anything-but list excluded", `{"data":{"stage":[{"anything-but":["test","dev"]}]}}`, `{"data":{"stage":"dev"}}`, false},
	{"3.7 anything-but missing field", `{"data":{"host":[{"anything-but":{"suffix":".internal"}}]}}`, `{"data":{}}`, false},
	// 3.8 numeric
	{"3.8 numeric range upper bound", `{"data":{"amount":[{"numeric":[">",0,"<=",500]}]}}`, `{"data":{"amount":500}}`, true},
	{"3.8 numeric on string", `{"data":{"amount":[{"numeric":[">",0,"<=",500]}]}}`, `{"data":{"amount":"250"}}`, false},
	{"3.8 numeric by value", `{"data":{"amount":[{"numeric":["=",12.5]}]}}`, `{"data":{"amount":1.25e1}}`, true},
	// 3.9 cidr
	{"3.9 cidr inside", `{"data":{"srcip":[{"cidr":"192.168.0.0/16"}]}}`, `{"data":{"srcip":"192.168.40.2"}}`, true},
	{"3.9 cidr outside", `{"data":{"srcip":[{"cidr":"192.168.0.0/16"}]}}`, `{"data":{"srcip":"192.169.0.1"}}`, false},
	// 3.10 exists
	{"3.10 exists false", `{"data":{"debug":[{"exists":false}]}}`, `{"data":{"user":"u1"}}`, true},
	{"3.10 exists true on null", `{"data":{"user":[{"exists":true}]}}`, `{"data":{"user":null}}`, true},
	// 3.11 $or
	{"3.11 $or second branch", `{"data":{"$or":[{"severity":["critical"]},{"amount":[{"numeric":[">",900]}]}]}}`, `{"data":{"severity":"low","amount":950}}`, true},
	{"3.11 $or no branch", `{"data":{"$or":[{"severity":["critical"]},{"amount":[{"numeric":[">",900]}]}]}}`, `{"data":{"severity":"low","amount":10}}`, false},
	// 3.12 combining
	{"3.12 combined", `{"source":[{"prefix":"acs:"}],"data":{"srcip":[{"cidr":"10.1.0.0/16"}],"severity":["critical",{"prefix":"sev1"}],"amount":[{"numeric":[">=",10]}]}}`,
		`{"source":"acs:ecs","data":{"srcip":"10.1.2.3","severity":"sev1-db","amount":10}}`, true},
	{"3.12 combined one field fails", `{"source":[{"prefix":"acs:"}],"data":{"srcip":[{"cidr":"10.1.0.0/16"}],"severity":["critical",{"prefix":"sev1"}],"amount":[{"numeric":[">=",10]}]}}`,
		`{"source":"acs:ecs","data":{"srcip":"10.1.2.3","severity":"sev1-db","amount":9}}`, false},
	// 4 type rules
	{"4 string vs number", `{"v":["7"]}`, `{"v":7}`, false},
	{"4 string vs boolean", `{"v":["true"]}`, `{"v":true}`, false},
	{"4 string vs null", `{"v":["null"]}`, `{"v":null}`, false},
	{"4 number vs number", `{"v":[7]}`, `{"v":7}`, true},
	{"4 7 vs 7.0", `{"v":[7]}`, `{"v":7.0}`, true},
	{"4 7 vs 7e0", `{"v":[7]}`, `{"v":7e0}`, true},
	{"4 prefix on bool", `{"v":[{"prefix":"t"}]}`, `{"v":true}`, false},
	{"4 suffix on null", `{"v":[{"suffix":"l"}]}`, `{"v":null}`, false},
	{"4 contains on number", `{"v":[{"contains":"1"}]}`, `{"v":123}`, false},
	{"4 wildcard on number", `{"v":[{"wildcard":"*"}]}`, `{"v":1}`, false},
	{"4 equals-ignore-case on bool", `{"v":[{"equals-ignore-case":"TRUE"}]}`, `{"v":true}`, false},
	{"4 numeric on numeric string", `{"v":[{"numeric":["=",7]}]}`, `{"v":"7"}`, false},
	{"4 cidr on number", `{"v":[{"cidr":"10.0.0.0/8"}]}`, `{"v":10}`, false},
	{"4 cidr on other family", `{"v":[{"cidr":"10.0.0.0/8"}]}`, `{"v":"::1"}`, false},
	{"4 cidr on non-ip", `{"v":[{"cidr":"10.0.0.0/8"}]}`, `{"v":"10.0.0.x"}`, false},
	{"4 operator on missing", `{"v":[{"prefix":"a"}]}`, `{"w":"a"}`, false},
	{"4 exists false on missing", `{"v":[{"exists":false}]}`, `{"w":"a"}`, true},
	{"4 null matches null literal", `{"v":[null]}`, `{"v":null}`, true},
	{"4 null matches anything-but", `{"v":[{"anything-but":"x"}]}`, `{"v":null}`, true},
	{"4 null excluded by anything-but null", `{"v":[{"anything-but":[null]}]}`, `{"v":null}`, false},
	{"4 null exists true", `{"v":[{"exists":true}]}`, `{"v":null}`, true},
	{"4 empty string matches empty literal", `{"v":[""]}`, `{"v":""}`, true},
	{"4 empty string anything-but", `{"v":[{"anything-but":"x"}]}`, `{"v":""}`, true},
	{"4 empty string excluded", `{"v":[{"anything-but":""}]}`, `{"v":""}`, false},
	{"4 empty string exists", `{"v":[{"exists":true}]}`, `{"v":""}`, true},
	{"4 empty string is not null", `{"v":[null]}`, `{"v":""}`, false},
	{"4 empty array literal", `{"v":["a"]}`, `{"v":[]}`, false},
	{"4 empty array anything-but", `{"v":[{"anything-but":"a"}]}`, `{"v":[]}`, false},
	{"4 empty array exists true", `{"v":[{"exists":true}]}`, `{"v":[]}`, false},
	{"4 nested arrays flattened", `{"v":[2]}`, `{"v":[[1],[2]]}`, true},
	{"4 nested arrays flattened miss", `{"v":[3]}`, `{"v":[[1],[2]]}`, false},
	{"4 unicode code points", `{"v":["é"]}`, `{"v":"e\u0301"}`, false},
	{"4 unicode same code point", `{"v":["é"]}`, `{"v":"\u00e9"}`, true},
	{"4 big integer exact", `{"data":{"timestamp":[1655952591589]}}`, `{"data":{"timestamp":1655952591589}}`, true},
	{"4 big integer off by one", `{"data":{"timestamp":[1655952591589]}}`, `{"data":{"timestamp":1655952591590}}`, false},
	{"4 beyond 2^53 rounds", `{"v":[9007199254740993]}`, `{"v":9007199254740992}`, true},
}

var ownCases = []matchCase{
	// exact values
	{"exact number negative zero", `{"v":[0]}`, `{"v":-0}`, true},
	{"exact float", `{"v":[0.1]}`, `{"v":0.10}`, true},
	{"exact true", `{"v":[true]}`, `{"v":true}`, true},
	{"exact true vs false", `{"v":[true]}`, `{"v":false}`, false},
	{"exact false", `{"v":[false]}`, `{"v":false}`, true},
	{"exact null vs false", `{"v":[null]}`, `{"v":false}`, false},
	{"exact string escaped in event", `{"v":["a\"b"]}`, `{"v":"a\u0022b"}`, true},
	{"exact string with slash escape", `{"v":["a/b"]}`, `{"v":"a\/b"}`, true},
	{"exact no trimming", `{"v":["a"]}`, `{"v":" a"}`, false},
	{"exact mixed list", `{"v":["a",1,true,null]}`, `{"v":1.0}`, true},
	{"exact vs object", `{"v":["a"]}`, `{"v":{"a":1}}`, false},
	{"exact emoji surrogates", `{"v":["😀"]}`, `{"v":"\ud83d\ude00"}`, true},
	{"exact lone surrogate is U+FFFD", `{"v":["\ufffd"]}`, `{"v":"\ud800"}`, true},
	{"key with escape in event", `{"ab":["x"]}`, `{"a\u0062":"x"}`, true},
	{"dotted key literal", `{"a.b":["x"]}`, `{"a.b":"x"}`, true},
	{"dotted key not a path", `{"a.b":["x"]}`, `{"a":{"b":"x"}}`, false},
	{"empty key", `{"":["x"]}`, `{"":"x"}`, true},
	{"dollar key is literal", `{"$and":["x"]}`, `{"$and":"x"}`, true},
	{"unicode key", `{"größe":[1]}`, `{"größe":1}`, true},
	{"long escaped string", `{"v":["` + strings.Repeat("ab", 200) + `\n"]}`, `{"v":"` + strings.Repeat("ab", 200) + `\n"}`, true},
	// prefix
	{"prefix whole value", `{"v":[{"prefix":"abc"}]}`, `{"v":"abc"}`, true},
	{"prefix longer than value", `{"v":[{"prefix":"abcd"}]}`, `{"v":"abc"}`, false},
	{"prefix ignore case", `{"v":[{"prefix":{"equals-ignore-case":"LOGS/"}}]}`, `{"v":"logs/a"}`, true},
	{"prefix ignore case miss", `{"v":[{"prefix":{"equals-ignore-case":"LOGS/"}}]}`, `{"v":"log/a"}`, false},
	{"prefix ignore case unicode", `{"v":[{"prefix":{"equals-ignore-case":"ÉTÉ"}}]}`, `{"v":"été 2024"}`, true},
	{"prefix ignore case kelvin", `{"v":[{"prefix":{"equals-ignore-case":"k"}}]}`, `{"v":"\u212aelvin"}`, true},
	{"prefix on array element", `{"v":[{"prefix":"b"}]}`, `{"v":["a","bc"]}`, true},
	{"prefix escaped event", `{"v":[{"prefix":"a\nb"}]}`, `{"v":"a\nbc"}`, true},
	// suffix
	{"suffix whole value", `{"v":[{"suffix":"abc"}]}`, `{"v":"abc"}`, true},
	{"suffix ignore case miss", `{"v":[{"suffix":{"equals-ignore-case":".CSV"}}]}`, `{"v":"x.tsv"}`, false},
	{"suffix ignore case shorter value", `{"v":[{"suffix":{"equals-ignore-case":"abc"}}]}`, `{"v":"C"}`, false},
	{"suffix on number", `{"v":[{"suffix":"0"}]}`, `{"v":10}`, false},
	{"suffix multibyte", `{"v":[{"suffix":"é"}]}`, `{"v":"café"}`, true},
	// contains
	{"contains middle", `{"v":[{"contains":"b"}]}`, `{"v":"abc"}`, true},
	{"contains whole", `{"v":[{"contains":"abc"}]}`, `{"v":"abc"}`, true},
	{"contains longer", `{"v":[{"contains":"abcd"}]}`, `{"v":"abc"}`, false},
	{"contains on null", `{"v":[{"contains":"n"}]}`, `{"v":null}`, false},
	// equals-ignore-case
	{"ignore case greek", `{"v":[{"equals-ignore-case":"ΣΑΣ"}]}`, `{"v":"σας"}`, true},
	{"ignore case no ß expansion", `{"v":[{"equals-ignore-case":"SS"}]}`, `{"v":"ß"}`, false},
	{"ignore case empty operand", `{"v":[{"equals-ignore-case":""}]}`, `{"v":""}`, true},
	{"ignore case array", `{"v":[{"equals-ignore-case":"b"}]}`, `{"v":["A","B"]}`, true},
	// wildcard
	{"wildcard star only", `{"v":[{"wildcard":"*"}]}`, `{"v":""}`, true},
	{"wildcard no star exact", `{"v":[{"wildcard":"abc"}]}`, `{"v":"abc"}`, true},
	{"wildcard no star differs", `{"v":[{"wildcard":"abc"}]}`, `{"v":"abcd"}`, false},
	{"wildcard leading", `{"v":[{"wildcard":"*.gz"}]}`, `{"v":"a.b.gz"}`, true},
	{"wildcard trailing", `{"v":[{"wildcard":"logs/*"}]}`, `{"v":"logs/"}`, true},
	{"wildcard escaped star", `{"v":[{"wildcard":"a\\*b"}]}`, `{"v":"a*b"}`, true},
	{"wildcard escaped star is literal", `{"v":[{"wildcard":"a\\*b"}]}`, `{"v":"axb"}`, false},
	{"wildcard escaped backslash", `{"v":[{"wildcard":"a\\\\*"}]}`, `{"v":"a\\xyz"}`, true},
	{"wildcard overlap", `{"v":[{"wildcard":"*ab*ab*"}]}`, `{"v":"xabyab"}`, true},
	{"wildcard overlap miss", `{"v":[{"wildcard":"*ab*ab*"}]}`, `{"v":"xaby"}`, false},
	{"wildcard prefix and suffix overlap", `{"v":[{"wildcard":"ab*ba"}]}`, `{"v":"aba"}`, false},
	{"wildcard case-sensitive", `{"v":[{"wildcard":"A*"}]}`, `{"v":"abc"}`, false},
	{"wildcard newline", `{"v":[{"wildcard":"a*c"}]}`, `{"v":"a\nc"}`, true},
	// anything-but
	{"anything-but string", `{"v":[{"anything-but":"a"}]}`, `{"v":"b"}`, true},
	{"anything-but string excluded", `{"v":[{"anything-but":"a"}]}`, `{"v":"a"}`, false},
	{"anything-but number", `{"v":[{"anything-but":5}]}`, `{"v":5.0}`, false},
	{"anything-but number type-strict", `{"v":[{"anything-but":5}]}`, `{"v":"5"}`, true},
	{"anything-but string type-strict", `{"v":[{"anything-but":"5"}]}`, `{"v":5}`, true},
	{"anything-but bool", `{"v":[{"anything-but":true}]}`, `{"v":true}`, false},
	{"anything-but bool other", `{"v":[{"anything-but":true}]}`, `{"v":false}`, true},
	{"anything-but mixed list", `{"v":[{"anything-but":["a",1,false]}]}`, `{"v":1}`, false},
	{"anything-but object value", `{"v":[{"anything-but":"a"}]}`, `{"v":{"x":1}}`, false},
	{"anything-but array one passes", `{"v":[{"anything-but":"a"}]}`, `{"v":["a","b"]}`, true},
	{"anything-but array none pass", `{"v":[{"anything-but":["a","b"]}]}`, `{"v":["a","b"]}`, false},
	{"anything-but prefix", `{"v":[{"anything-but":{"prefix":"test-"}}]}`, `{"v":"test-1"}`, false},
	{"anything-but prefix passes", `{"v":[{"anything-but":{"prefix":"test-"}}]}`, `{"v":"prod-1"}`, true},
	{"anything-but prefix list", `{"v":[{"anything-but":{"prefix":["a","b"]}}]}`, `{"v":"bx"}`, false},
	{"anything-but prefix number", `{"v":[{"anything-but":{"prefix":"1"}}]}`, `{"v":12}`, true},
	{"anything-but suffix", `{"v":[{"anything-but":{"suffix":".internal"}}]}`, `{"v":"db.internal"}`, false},
	{"anything-but suffix passes", `{"v":[{"anything-but":{"suffix":".internal"}}]}`, `{"v":"db.example"}`, true},
	{"anything-but ignore case", `{"v":[{"anything-but":{"equals-ignore-case":["Test","Dev"]}}]}`, `{"v":"DEV"}`, false},
	{"anything-but ignore case passes", `{"v":[{"anything-but":{"equals-ignore-case":"test"}}]}`, `{"v":"prod"}`, true},
	{"anything-but wildcard", `{"v":[{"anything-but":{"wildcard":"*.tmp"}}]}`, `{"v":"a.tmp"}`, false},
	{"anything-but wildcard passes", `{"v":[{"anything-but":{"wildcard":["*.tmp","*.bak"]}}]}`, `{"v":"a.txt"}`, true},
	{"anything-but wildcard null", `{"v":[{"anything-but":{"wildcard":"*"}}]}`, `{"v":null}`, true},
	// numeric
	{"numeric eq", `{"v":[{"numeric":["=",5]}]}`, `{"v":5}`, true},
	{"numeric ne", `{"v":[{"numeric":["!=",5]}]}`, `{"v":5}`, false},
	{"numeric ne passes", `{"v":[{"numeric":["!=",5]}]}`, `{"v":6}`, true},
	{"numeric lt", `{"v":[{"numeric":["<",5]}]}`, `{"v":4.999}`, true},
	{"numeric lt boundary", `{"v":[{"numeric":["<",5]}]}`, `{"v":5}`, false},
	{"numeric le boundary", `{"v":[{"numeric":["<=",5]}]}`, `{"v":5}`, true},
	{"numeric gt boundary", `{"v":[{"numeric":[">",5]}]}`, `{"v":5}`, false},
	{"numeric ge boundary", `{"v":[{"numeric":[">=",5]}]}`, `{"v":5}`, true},
	{"numeric reversed range", `{"v":[{"numeric":["<",10,">",0]}]}`, `{"v":5}`, true},
	{"numeric reversed range miss", `{"v":[{"numeric":["<",10,">",0]}]}`, `{"v":10}`, false},
	{"numeric epoch ms", `{"data":{"timestamp":[{"numeric":[">=",1655952591000,"<",1655952592000]}]}}`, `{"data":{"timestamp":1655952591589}}`, true},
	{"numeric epoch ms miss", `{"data":{"timestamp":[{"numeric":[">=",1655952591000,"<",1655952591500]}]}}`, `{"data":{"timestamp":1655952591589}}`, false},
	{"numeric negative", `{"v":[{"numeric":["<",-1e-3]}]}`, `{"v":-0.5}`, true},
	{"numeric tiny precision", `{"v":[{"numeric":[">",1e-7]}]}`, `{"v":2e-7}`, true},
	{"numeric range by one element", `{"v":[{"numeric":[">",0,"<",5]}]}`, `{"v":[-1,10]}`, false},
	{"numeric range by one element hit", `{"v":[{"numeric":[">",0,"<",5]}]}`, `{"v":[-1,3,10]}`, true},
	{"numeric on bool", `{"v":[{"numeric":[">",0]}]}`, `{"v":true}`, false},
	{"numeric on null", `{"v":[{"numeric":["!=",0]}]}`, `{"v":null}`, false},
	{"numeric overflowing event number", `{"v":[{"numeric":[">",0]}]}`, `{"v":1e400}`, false},
	{"overflowing event number exists", `{"v":[{"exists":true}]}`, `{"v":1e400}`, true},
	{"overflowing event number anything-but", `{"v":[{"anything-but":1}]}`, `{"v":-1e400}`, false},
	{"numeric big operand", `{"v":[{"numeric":[">",1e300]}]}`, `{"v":1e301}`, true},
	// cidr
	{"cidr slash 32", `{"v":[{"cidr":"10.0.0.1/32"}]}`, `{"v":"10.0.0.1"}`, true},
	{"cidr slash 32 miss", `{"v":[{"cidr":"10.0.0.1/32"}]}`, `{"v":"10.0.0.2"}`, false},
	{"cidr bare address", `{"v":[{"cidr":"10.0.0.1"}]}`, `{"v":"10.0.0.1"}`, true},
	{"cidr network address", `{"v":[{"cidr":"10.1.0.0/16"}]}`, `{"v":"10.1.0.0"}`, true},
	{"cidr broadcast address", `{"v":[{"cidr":"10.1.0.0/16"}]}`, `{"v":"10.1.255.255"}`, true},
	{"cidr slash 0", `{"v":[{"cidr":"0.0.0.0/0"}]}`, `{"v":"203.0.113.9"}`, true},
	{"cidr host bits ignored", `{"v":[{"cidr":"10.1.2.3/16"}]}`, `{"v":"10.1.200.1"}`, true},
	{"cidr ipv6", `{"v":[{"cidr":"2001:db8::/32"}]}`, `{"v":"2001:db8:1::5"}`, true},
	{"cidr ipv6 miss", `{"v":[{"cidr":"2001:db8::/32"}]}`, `{"v":"2001:db9::1"}`, false},
	{"cidr ipv6 bare", `{"v":[{"cidr":"::1"}]}`, `{"v":"0:0:0:0:0:0:0:1"}`, true},
	{"cidr ipv4 on v6 block", `{"v":[{"cidr":"::/0"}]}`, `{"v":"10.0.0.1"}`, false},
	{"cidr v4-mapped on v4 block", `{"v":[{"cidr":"10.0.0.0/8"}]}`, `{"v":"::ffff:10.0.0.1"}`, false},
	{"cidr leading zero", `{"v":[{"cidr":"10.0.0.0/8"}]}`, `{"v":"10.0.0.01"}`, false},
	{"cidr octet too big", `{"v":[{"cidr":"10.0.0.0/8"}]}`, `{"v":"10.0.0.256"}`, false},
	{"cidr zone", `{"v":[{"cidr":"fe80::/10"}]}`, `{"v":"fe80::1%eth0"}`, false},
	{"cidr trailing text", `{"v":[{"cidr":"10.0.0.0/8"}]}`, `{"v":"10.0.0.1/8"}`, false},
	{"cidr array element", `{"v":[{"cidr":"10.0.0.0/8"}]}`, `{"v":["1.1.1.1","10.9.9.9"]}`, true},
	// exists
	{"exists true present", `{"v":[{"exists":true}]}`, `{"v":1}`, true},
	{"exists true missing", `{"v":[{"exists":true}]}`, `{"w":1}`, false},
	{"exists true on object", `{"v":[{"exists":true}]}`, `{"v":{"a":1}}`, false},
	{"exists false on object", `{"v":[{"exists":false}]}`, `{"v":{"a":1}}`, true},
	{"exists false on empty array", `{"v":[{"exists":false}]}`, `{"v":[]}`, true},
	{"exists false on array", `{"v":[{"exists":false}]}`, `{"v":[1]}`, false},
	{"exists false on array of objects", `{"v":[{"exists":false}]}`, `{"v":[{"a":1}]}`, true},
	{"exists false missing parent", `{"data":{"debug":[{"exists":false}]}}`, `{"id":"1"}`, true},
	{"exists false empty parent", `{"data":{"debug":[{"exists":false}]}}`, `{"data":{}}`, true},
	// §2 "a nested pattern object never matches an event scalar": a scalar
	// parent is not a missing one.
	{"exists false string parent", `{"data":{"debug":[{"exists":false}]}}`, `{"data":"text"}`, false},
	{"exists false null parent", `{"data":{"debug":[{"exists":false}]}}`, `{"data":null}`, false},
	{"exists false number parent", `{"data":{"debug":[{"exists":false}]}}`, `{"data":42}`, false},
	{"exists false boolean parent", `{"data":{"debug":[{"exists":false}]}}`, `{"data":true}`, false},
	{"exists false empty array parent", `{"data":{"debug":[{"exists":false}]}}`, `{"data":[]}`, false},
	{"exists false array of scalars parent", `{"data":{"debug":[{"exists":false}]}}`, `{"data":[1,"x",null]}`, false},
	{"exists false array parent with an object", `{"data":{"debug":[{"exists":false}]}}`, `{"data":[1,{"user":"u1"}]}`, true},
	{"exists false scalar event", `{"debug":[{"exists":false}]}`, `"text"`, false},
	{"exists false empty array event", `{"debug":[{"exists":false}]}`, `[]`, false},
	{"exists false deeper scalar parent", `{"a":{"b":{"c":[{"exists":false}]}}}`, `{"a":{"b":7}}`, false},
	{"exists false deeper missing parent", `{"a":{"b":{"c":[{"exists":false}]}}}`, `{"a":{"x":7}}`, true},
	{"$or exists false scalar parent", `{"$or":[{"data":{"debug":[{"exists":false}]}},{"id":[1]}]}`, `{"data":"text","id":2}`, false},
	{"exists true missing parent", `{"data":{"user":[{"exists":true}]}}`, `{"id":"1"}`, false},
	{"exists false or value", `{"v":[{"exists":false},"x"]}`, `{"v":"x"}`, true},
	{"exists false or value missing", `{"v":[{"exists":false},"x"]}`, `{}`, true},
	{"exists false or value other", `{"v":[{"exists":false},"x"]}`, `{"v":"y"}`, false},
	// objects, arrays of objects
	{"nested object", `{"a":{"b":{"c":[1]}}}`, `{"a":{"b":{"c":1}}}`, true},
	{"nested object missing", `{"a":{"b":{"c":[1]}}}`, `{"a":{"b":{}}}`, false},
	{"nested pattern vs scalar", `{"a":{"b":[1]}}`, `{"a":1}`, false},
	{"nested pattern vs string", `{"data":{"value":{"page":["/home"]}}}`, `{"data":{"value":"{\"page\":\"/home\"}"}}`, false},
	{"array of objects any element", `{"items":{"sku":["A"]}}`, `{"items":[{"sku":"B"},{"sku":"A"}]}`, true},
	{"array of objects none", `{"items":{"sku":["C"]}}`, `{"items":[{"sku":"B"},{"sku":"A"}]}`, false},
	{"same element rule", `{"items":{"sku":["A"],"qty":[2]}}`, `{"items":[{"sku":"A","qty":1},{"sku":"B","qty":2}]}`, false},
	{"same element rule hit", `{"items":{"sku":["A"],"qty":[2]}}`, `{"items":[{"sku":"B","qty":2},{"sku":"A","qty":2}]}`, true},
	{"same element nested arrays", `{"o":{"items":{"sku":["A"],"qty":[2]}}}`, `{"o":[{"items":[{"sku":"A"}]},{"items":[{"qty":2}]}]}`, false},
	{"same element outer any inner", `{"o":{"id":[1],"items":{"sku":["A"]}}}`, `{"o":[{"id":1,"items":[{"sku":"B"}]},{"id":2,"items":[{"sku":"A"}]}]}`, false},
	{"same element outer any inner hit", `{"o":{"id":[2],"items":{"sku":["A"]}}}`, `{"o":[{"id":1,"items":[{"sku":"B"}]},{"id":2,"items":[{"sku":"C"},{"sku":"A"}]}]}`, true},
	{"same element exists false", `{"items":{"sku":["A"],"discount":[{"exists":false}]}}`, `{"items":[{"sku":"A","discount":5},{"sku":"A"}]}`, true},
	{"same element exists false miss", `{"items":{"sku":["A"],"discount":[{"exists":false}]}}`, `{"items":[{"sku":"A","discount":5},{"sku":"B"}]}`, false},
	{"array of arrays of objects", `{"items":{"sku":["A"]}}`, `{"items":[[{"sku":"A"}]]}`, true},
	{"array of objects empty", `{"items":{"sku":["A"]}}`, `{"items":[]}`, false},
	{"array of objects empty exists false", `{"items":{"sku":[{"exists":false}]}}`, `{"items":[]}`, false},
	{"array of objects nested empty exists false", `{"items":{"sku":[{"exists":false}]}}`, `{"items":[[]]}`, false},
	{"array mixing objects and scalars", `{"items":{"sku":["A"]}}`, `{"items":[1,{"sku":"A"},"x"]}`, true},
	{"leaf on array with objects", `{"v":["a"]}`, `{"v":[{"x":1},"a"]}`, true},
	{"root array is looked through", `{"v":[1]}`, `[{"v":2},{"v":1}]`, true},
	{"deep nesting", `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":["deep"]}}}}}}}}`, `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":"deep"}}}}}}}}`, true},
	{"deep event skipped", `{"v":[1]}`, `{"w":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `,"v":1}`, true},
	{"deep event named", `{"v":[1]}`, `{"v":` + strings.Repeat("[", 500) + "1" + strings.Repeat("]", 500) + `}`, true},
	{"field names not in pattern ignored", `{"v":[1]}`, `{"a":{"b":[1,2,{"c":null}]},"v":1,"z":"x"}`, true},
	// $or
	{"$or at root", `{"$or":[{"a":[1]},{"b":[2]}]}`, `{"b":2}`, true},
	{"$or at root none", `{"$or":[{"a":[1]},{"b":[2]}]}`, `{"a":2,"b":1}`, false},
	{"$or anded with sibling", `{"c":[3],"$or":[{"a":[1]},{"b":[2]}]}`, `{"a":1,"c":4}`, false},
	{"$or anded with sibling hit", `{"c":[3],"$or":[{"a":[1]},{"b":[2]}]}`, `{"a":1,"c":3}`, true},
	{"$or nested", `{"$or":[{"a":[1]},{"$or":[{"b":[2]},{"c":[3]}]}]}`, `{"c":3}`, true},
	{"$or nested none", `{"$or":[{"a":[1]},{"$or":[{"b":[2]},{"c":[3]}]}]}`, `{"d":3}`, false},
	{"$or three branches", `{"$or":[{"a":[1]},{"b":[2]},{"c":[3]}]}`, `{"c":3}`, true},
	{"$or branches same key", `{"$or":[{"a":[1]},{"a":[2]}]}`, `{"a":2}`, true},
	{"$or branch nested object", `{"$or":[{"d":{"x":[1]}},{"d":{"y":[1]}}]}`, `{"d":{"y":1}}`, true},
	{"$or with exists false branch", `{"$or":[{"a":[{"exists":false}]},{"a":[1]}]}`, `{"b":1}`, true},
	{"$or under array same element", `{"items":{"sku":["A"]},"$or":[{"items":{"qty":[1]}},{"x":[1]}]}`, `{"items":[{"sku":"A","qty":2},{"sku":"B","qty":1}]}`, false},
	{"$or under array same element hit", `{"items":{"sku":["A"]},"$or":[{"items":{"qty":[1]}},{"x":[1]}]}`, `{"items":[{"sku":"A","qty":1}]}`, true},
	{"$or under array other branch", `{"items":{"sku":["A"]},"$or":[{"items":{"qty":[1]}},{"x":[1]}]}`, `{"x":1,"items":[{"sku":"A","qty":2}]}`, true},
	{"$or inside array pattern", `{"items":{"$or":[{"sku":["A"]},{"qty":[1]}],"ok":[true]}}`, `{"items":[{"sku":"A","ok":false},{"qty":1,"ok":true}]}`, true},
	{"$or inside array pattern same element", `{"items":{"$or":[{"sku":["A"]},{"qty":[1]}],"ok":[true]}}`, `{"items":[{"sku":"A","ok":false},{"qty":2,"ok":true}]}`, false},
	{"$or leaf and object on one key", `{"x":[1],"$or":[{"x":{"y":[1]}},{"z":[1]}]}`, `{"x":[{"y":1},1]}`, true},
	{"$or leaf and object on one key miss", `{"x":[1],"$or":[{"x":{"y":[1]}},{"z":[1]}]}`, `{"x":[{"y":2},1]}`, false},
	{"$or branches share a nested key", `{"$or":[{"d":{"a":[1]}},{"d":{"b":[1]}}],"d":{"c":[1]}}`, `{"d":[{"a":1},{"c":1}]}`, false},
	{"$or branches share a nested key hit", `{"$or":[{"d":{"a":[1]}},{"d":{"b":[1]}}],"d":{"c":[1]}}`, `{"d":[{"a":1},{"b":1,"c":1}]}`, true},
	// empty pattern, malformed events
	{"empty pattern", `{}`, `{"a":1}`, true},
	{"empty pattern on empty event", `{}`, `{}`, true},
	{"malformed event", `{"v":[1]}`, `{"v":1`, false},
	{"malformed event after match", `{"v":[1]}`, `{"v":1,"w":tru}`, false},
	{"malformed trailing data", `{"v":[1]}`, `{"v":1} x`, false},
	{"malformed control character", `{"v":["a"]}`, "{\"v\":\"a\",\"w\":\"\x01\"}", false},
	{"empty event", `{"v":[1]}`, ``, false},
	{"duplicate key last wins", `{"v":[1]}`, `{"v":1,"v":2}`, false},
	{"duplicate key last wins hit", `{"v":[2]}`, `{"v":1,"v":2}`, true},
	{"whitespace everywhere", `{"a":{"b":[1]}}`, " \n{ \"a\" :\t{ \"b\" : [ 1 ] } } \r\n", true},
}

// compileBoth compiles a JSON pattern and, when TOML can express it, its
// TOML form (as TOML text decoded with BurntSushi/toml).
func compileBoth(t *testing.T, pattern string) (fromJSON *Pattern, jsonErr error, fromTOML *Pattern, tomlErr error, tomlOK bool) {
	t.Helper()
	fromJSON, jsonErr = CompileJSON([]byte(pattern))
	text, ok := tomlText(pattern)
	if !ok {
		return fromJSON, jsonErr, nil, nil, false
	}
	var doc map[string]any
	if _, err := toml.Decode(text, &doc); err != nil {
		t.Fatalf("TOML form of %s does not decode: %v\n%s", pattern, err, text)
	}
	tree, _ := doc["pattern"].(map[string]any)
	if _, isMap := doc["pattern"].(map[string]any); !isMap {
		fromTOML, tomlErr = compileValue(fromTree(doc["pattern"]))
	} else {
		fromTOML, tomlErr = Compile(tree)
	}
	return fromJSON, jsonErr, fromTOML, tomlErr, true
}

func TestConformance(t *testing.T) {
	for _, set := range []struct {
		name  string
		cases []matchCase
	}{{"spec", specCases}, {"own", ownCases}} {
		t.Run(set.name, func(t *testing.T) {
			for _, c := range set.cases {
				t.Run(c.name, func(t *testing.T) {
					pj, errJ, pt, errT, tomlOK := compileBoth(t, c.pattern)
					if errJ != nil {
						t.Fatalf("CompileJSON(%s): %v", c.pattern, errJ)
					}
					if got := pj.Match([]byte(c.event)); got != c.want {
						t.Errorf("JSON form: Match(%s, %s) = %v, want %v", c.pattern, c.event, got, c.want)
					}
					if tomlOK {
						if errT != nil {
							t.Fatalf("TOML form of %s: %v", c.pattern, errT)
						}
						if got := pt.Match([]byte(c.event)); got != c.want {
							t.Errorf("TOML form: Match(%s, %s) = %v, want %v", c.pattern, c.event, got, c.want)
						}
					} else if !strings.Contains(c.pattern, "null") {
						t.Errorf("no TOML form for %s", c.pattern)
					}
					if ev, ok := decodeUseNumber([]byte(c.event)); ok && utf8.ValidString(c.event) {
						if got := refMatch([]byte(c.pattern), ev); got != c.want {
							t.Errorf("reference matcher disagrees with the table: %v", got)
						}
					}
				})
			}
		})
	}
}

// tomlText writes the JSON pattern as TOML text `pattern = {...}` (inline
// tables). ok is false when TOML cannot express it (null, invalid UTF-8,
// non-finite numbers).
func tomlText(pattern string) (string, bool) {
	v, ok := decodeUseNumber([]byte(pattern))
	if !ok || !utf8.ValidString(pattern) {
		return "", false
	}
	var b strings.Builder
	b.WriteString("pattern = ")
	if !writeTOML(&b, v) {
		return "", false
	}
	b.WriteByte('\n')
	return b.String(), true
}

func writeTOML(b *strings.Builder, v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case string:
		writeTOMLString(b, t)
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if _, err := strconv.ParseInt(s, 10, 64); err == nil {
				b.WriteString(s)
				return true
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return false
		}
		if strings.ContainsAny(s, ".eE") {
			b.WriteString(s)
		} else {
			b.WriteString(strconv.FormatFloat(f, 'e', -1, 64))
		}
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			if !writeTOML(b, e) {
				return false
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeTOMLString(b, k)
			b.WriteString(" = ")
			if !writeTOML(b, t[k]) {
				return false
			}
		}
		b.WriteByte('}')
	default:
		return false
	}
	return true
}

func writeTOMLString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// problemKeys reduces an error to its codes and paths, the part that must
// be the same whichever form the pattern came in.
func problemKeys(err error) []string {
	var e *Error
	if err == nil {
		return nil
	}
	e = err.(*Error)
	var out []string
	for _, p := range e.Problems {
		out = append(out, p.Code+" "+JSONPath(p.Path))
	}
	return out
}

func TestTOMLFormsOfSpecSnippets(t *testing.T) {
	// The TOML snippets of the pattern contract (docs/filters.md), written as tables the way a
	// task file has them, against their JSON forms.
	cases := []struct {
		toml, json string
		events     []string
	}{
		{`[filter.pattern]
source = ["acs:alikafka"]
type   = [{ prefix = "alikafka:" }]

[filter.pattern.data]
amount   = [{ numeric = [">", 100] }]
severity = ["high", "critical"]
stage    = [{ anything-but = { prefix = "test-" } }]
"$or"    = [{ country = ["CN"] }, { vip = [true] }]
`, `{"source":["acs:alikafka"],"type":[{"prefix":"alikafka:"}],"data":{"amount":[{"numeric":[">",100]}],"severity":["high","critical"],"stage":[{"anything-but":{"prefix":"test-"}}],"$or":[{"country":["CN"]},{"vip":[true]}]}}`,
			[]string{
				`{"source":"acs:alikafka","type":"alikafka:Topic:Message","data":{"amount":101,"severity":"high","stage":"prod","vip":true}}`,
				`{"source":"acs:alikafka","type":"alikafka:Topic:Message","data":{"amount":101,"severity":"high","stage":"test-1","vip":true}}`,
				`{"source":"acs:alikafka","type":"alikafka:Topic:Message","data":{"amount":101,"severity":"high","stage":"prod","country":"US"}}`,
			}},
		{`[filter.pattern.data]
filename = [{ suffix = ".csv" }, { suffix = ".tsv" }]`, `{"data":{"filename":[{"suffix":".csv"},{"suffix":".tsv"}]}}`,
			[]string{`{"data":{"filename":"a.tsv"}}`, `{"data":{"filename":"a.txt"}}`}},
		{`[filter.pattern.data]
stage = [{ anything-but = ["test", "dev"] }]
host  = [{ anything-but = { suffix = ".internal" } }]`, `{"data":{"stage":[{"anything-but":["test","dev"]}],"host":[{"anything-but":{"suffix":".internal"}}]}}`,
			[]string{`{"data":{"stage":"prod","host":"a.example"}}`, `{"data":{"stage":"prod"}}`}},
		{`[filter.pattern.data]
user  = [{ exists = true }]
debug = [{ exists = false }]`, `{"data":{"user":[{"exists":true}],"debug":[{"exists":false}]}}`,
			[]string{`{"data":{"user":null}}`, `{"data":{"user":1,"debug":0}}`}},
		{`[filter.pattern]
source = [{ prefix = "acs:" }]
[filter.pattern.data]
srcip    = [{ cidr = "10.1.0.0/16" }]
severity = ["critical", { prefix = "sev1" }]
amount   = [{ numeric = [">=", 10] }]`, `{"source":[{"prefix":"acs:"}],"data":{"srcip":[{"cidr":"10.1.0.0/16"}],"severity":["critical",{"prefix":"sev1"}],"amount":[{"numeric":[">=",10]}]}}`,
			[]string{`{"source":"acs:ecs","data":{"srcip":"10.1.2.3","severity":"sev1-db","amount":10}}`, `{"source":"acs:ecs","data":{"srcip":"10.1.2.3","severity":"sev1-db","amount":9}}`}},
		// Arrays of tables are arrays of objects too.
		{`[[filter.pattern.data.filename]]
prefix = "logs/"
[[filter.pattern.data.filename]]
suffix = ".gz"
[[filter.pattern."$or"]]
type = ["a"]
[[filter.pattern."$or"]]
type = ["b"]`, `{"data":{"filename":[{"prefix":"logs/"},{"suffix":".gz"}]},"$or":[{"type":["a"]},{"type":["b"]}]}`,
			[]string{`{"type":"b","data":{"filename":"x.gz"}}`, `{"type":"c","data":{"filename":"x.gz"}}`, `{"type":"a","data":{"filename":"x.txt"}}`}},
	}
	for i, c := range cases {
		var doc struct {
			Filter struct {
				Pattern map[string]any `toml:"pattern"`
			} `toml:"filter"`
		}
		if _, err := toml.Decode(c.toml, &doc); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		pt, err := Compile(doc.Filter.Pattern)
		if err != nil {
			t.Fatalf("case %d: TOML: %v", i, err)
		}
		pj, err := CompileJSON([]byte(c.json))
		if err != nil {
			t.Fatalf("case %d: JSON: %v", i, err)
		}
		if !reflect.DeepEqual(pt.root != nil, pj.root != nil) {
			t.Fatalf("case %d: forms differ", i)
		}
		for _, ev := range c.events {
			a, b := pt.Match([]byte(ev)), pj.Match([]byte(ev))
			if a != b {
				t.Errorf("case %d: %s: TOML form says %v, JSON form %v", i, ev, a, b)
			}
			v, _ := decodeUseNumber([]byte(ev))
			if r := refMatch([]byte(c.json), v); r != b {
				t.Errorf("case %d: %s: reference says %v, matcher %v", i, ev, r, b)
			}
		}
	}
}

func TestHostileNesting(t *testing.T) {
	deep := strings.Repeat("[", 200000) + strings.Repeat("]", 200000)
	for _, pat := range []string{`{"v":[1]}`, `{"v":{"w":[1]}}`, `{"x":[1]}`} {
		p := MustCompileJSON(pat)
		if p.Match([]byte(`{"v":` + deep + `}`)) {
			t.Errorf("%s matched a hostile event", pat)
		}
	}
	// Within the depth limit nesting is followed.
	ok := strings.Repeat("[", 5000) + `{"w":1}` + strings.Repeat("]", 5000)
	if !MustCompileJSON(`{"v":{"w":[1]}}`).Match([]byte(`{"v":` + ok + `}`)) {
		t.Error("deep but legal nesting did not match")
	}
}

func TestParseFloat(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "250.5", "0.1", "0.000123", "123456789012345", "1234567890123456",
		"9007199254740993", "-12.5", "1e3", "1E-7", "0.30000000000000004", "99999999999999999999999",
		"3.14159265358979", "1655952591589", "100000000000000000000000.5", "0.0000000000000000000000001"} {
		got, ok := parseFloat([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		if ok != (err == nil) || got != want || math.Signbit(got) != math.Signbit(want) {
			t.Errorf("parseFloat(%s) = %v, %v; strconv says %v, %v", s, got, ok, want, err)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	ev := []byte(`{"source":"acs:x","id":"a\"b","data":{"items":[{"sku":"A","qty":2}],"ip":"10.1.2.3","n":12.5,"s":"caf\u00e9"}}`)
	for _, pat := range []string{
		`{"source":["acs:x"],"id":["a\"b"],"data":{"n":[{"numeric":[">",1]}]}}`,
		`{"data":{"items":{"sku":["A"],"qty":[2]},"ip":[{"cidr":"10.0.0.0/8"}],"s":[{"equals-ignore-case":"CAFÉ"}]}}`,
		`{"$or":[{"source":[{"prefix":"acs:"}]},{"data":{"s":[{"wildcard":"c*"}]}}],"id":[{"anything-but":{"suffix":"x"}}]}`,
	} {
		p := MustCompileJSON(pat)
		if !p.Match(ev) {
			t.Fatalf("%s does not match", pat)
		}
		if n := testing.AllocsPerRun(100, func() { p.Match(ev) }); n != 0 {
			t.Errorf("%s: %v allocations per Match", pat, n)
		}
	}
}

func TestPlainString(t *testing.T) {
	// Every special byte at every position around the 8-byte blocks, and
	// trailing bytes after the string: plainString agrees with jsonscan.
	for n := 0; n < 24; n++ {
		for pos := 0; pos <= n; pos++ {
			for _, special := range []string{`"`, `\\`, `\n`, `\"`, `\u00e9`, "\x01", "\x1f", "\x20", `\x`, "é", "\x7f", "\xff", "\x9f", "\xa2"} {
				body := strings.Repeat("a", n)
				s := []byte(`"` + body[:pos] + special + body[pos:] + `"` + `,"next":1`)
				end, esc := plainString(s, 0)
				wantEnd, wantEsc := jsonscan.ValidString(s, 0)
				if end != wantEnd || (end >= 0 && esc != wantEsc) {
					t.Fatalf("plainString(%q) = %d, %v; jsonscan.ValidString says %d, %v", s, end, esc, wantEnd, wantEsc)
				}
				for k := 0; k < len(s); k++ { // truncated input
					if a, _ := plainString(s[:k], 0); a != func() int { e, _ := jsonscan.ValidString(s[:k], 0); return e }() {
						t.Fatalf("plainString(%q) = %d disagrees with jsonscan", s[:k], a)
					}
				}
			}
		}
	}
}

func TestManyKeysUsePooledScratch(t *testing.T) {
	var pat, ev, miss []string
	for i := 0; i < 30; i++ {
		k := strconv.Quote("k" + strconv.Itoa(i))
		pat = append(pat, k+`:[`+strconv.Itoa(i)+`]`)
		ev = append(ev, k+`:`+strconv.Itoa(i))
		if i != 17 {
			miss = append(miss, k+`:`+strconv.Itoa(i))
		}
	}
	p := MustCompileJSON(`{"nested":{` + strings.Join(pat, ",") + `},` + strings.Join(pat, ",") + `}`)
	if p.nslots <= 48 {
		t.Fatalf("want a pattern past the on-stack scratch, nslots = %d", p.nslots)
	}
	hit := []byte(`{"nested":{` + strings.Join(ev, ",") + `},` + strings.Join(ev, ",") + `}`)
	no := []byte(`{"nested":{` + strings.Join(miss, ",") + `},` + strings.Join(ev, ",") + `}`)
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			ok := true
			for i := 0; i < 200; i++ {
				ok = ok && p.Match(hit) && !p.Match(no)
			}
			done <- ok
		}()
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Error("wrong result with pooled scratch")
		}
	}
}

// TestNestingLimitCountsFromTheTop: the matcher refuses what jsonscan.Valid
// refuses. Values the pattern skips or tests as a whole were validated with
// a depth counted again from 0, so an event nested 10,000 levels below a
// member passed for JSON and matched.
func TestNestingLimitCountsFromTheTop(t *testing.T) {
	n := jsonscan.MaxDepth
	for _, c := range []struct{ pat, ev string }{
		{`{"x":[{"exists":false}]}`, `{"v":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`},
		{`{"x":[{"exists":false}]}`, `[{"v":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}]`},
		{`{"v":[{"exists":true}]}`, `{"v":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`},
		{`{"v":[{"exists":true}]}`, `{"v":[` + strings.Repeat("{\"a\":", n-1) + "1" + strings.Repeat("}", n-1) + `]}`},
		{`{"v":{"w":[{"exists":false}]}}`, `{"v":{"u":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}}`},
		{`{"v":[{"exists":false}]}`, strings.Repeat("[", n+1) + strings.Repeat("]", n+1)},
	} {
		if jsonscan.Valid([]byte(c.ev)) {
			t.Fatalf("test event for %s is valid JSON", c.pat)
		}
		if MustCompileJSON(c.pat).Match([]byte(c.ev)) {
			t.Errorf("%s matched an event nested past %d levels", c.pat, n)
		}
	}
	// At the limit itself the event is JSON and is matched.
	ok := `{"v":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
	if !jsonscan.Valid([]byte(ok)) || !MustCompileJSON(`{"x":[{"exists":false}]}`).Match([]byte(ok)) {
		t.Error("an event nested exactly to the limit did not match")
	}
}
