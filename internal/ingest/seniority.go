package ingest

import (
	"slices"
	"strings"
	"unicode"
)

// The values of enum Seniority (schema.graphqls) and of the leads.seniority check.
const (
	SeniorityEntry    = "ENTRY"
	SenioritySenior   = "SENIOR"
	SeniorityManager  = "MANAGER"
	SeniorityDirector = "DIRECTOR"
	SeniorityVP       = "VP"
	SeniorityCLevel   = "C_LEVEL"
	SeniorityOwner    = "OWNER"
	SeniorityUnknown  = "UNKNOWN"
)

// seniorityWords are the words of a title that say its level. Words that do not say one on
// their own ("head", "lead", "partner", "executive", "principal", "associate") are absent.
var seniorityWords = map[string]string{
	"chief": SeniorityCLevel, "ceo": SeniorityCLevel, "cto": SeniorityCLevel, "cfo": SeniorityCLevel,
	"coo": SeniorityCLevel, "cmo": SeniorityCLevel, "cio": SeniorityCLevel, "cro": SeniorityCLevel,
	"cpo": SeniorityCLevel, "cso": SeniorityCLevel, "ciso": SeniorityCLevel, "chro": SeniorityCLevel,
	"cdo": SeniorityCLevel, "cco": SeniorityCLevel, "cao": SeniorityCLevel, "cxo": SeniorityCLevel,
	"csuite": SeniorityCLevel, "clevel": SeniorityCLevel, "president": SeniorityCLevel,

	"vp": SeniorityVP, "svp": SeniorityVP, "evp": SeniorityVP, "avp": SeniorityVP, "vps": SeniorityVP,

	"director": SeniorityDirector, "directors": SeniorityDirector, "dir": SeniorityDirector,

	"manager": SeniorityManager, "managers": SeniorityManager, "mgr": SeniorityManager,
	"supervisor": SeniorityManager,

	"owner": SeniorityOwner, "owners": SeniorityOwner, "founder": SeniorityOwner,
	"founders": SeniorityOwner, "cofounder": SeniorityOwner, "proprietor": SeniorityOwner,

	"entry": SeniorityEntry, "intern": SeniorityEntry, "interns": SeniorityEntry,
	"internship": SeniorityEntry, "trainee": SeniorityEntry, "apprentice": SeniorityEntry,
	"training": SeniorityEntry, "unpaid": SeniorityEntry,
}

// seniorityModifiers qualify a level ("Senior Director") and stand for one only when the title
// has no other ("Senior Engineer", "Junior Analyst").
var seniorityModifiers = map[string]string{
	"senior": SenioritySenior, "sr": SenioritySenior, "junior": SeniorityEntry, "jr": SeniorityEntry,
}

// seniorityPairs are two-word phrases read as one word; an empty level means the phrase says
// nothing about seniority although its words would ("Managing Director" is the CEO in the UK and
// a rank in a bank; a "Product Owner" owns a backlog, not a company).
var seniorityPairs = map[[2]string]string{
	{"vice", "president"}:     SeniorityVP,
	{"v", "p"}:                SeniorityVP,
	{"c", "level"}:            SeniorityCLevel,
	{"c", "suite"}:            SeniorityCLevel,
	{"c", "levels"}:           SeniorityCLevel,
	{"co", "founder"}:         SeniorityOwner,
	{"entry", "level"}:        SeniorityEntry,
	{"managing", "director"}:  "",
	{"executive", "director"}: "",
	{"product", "owner"}:      "",
}

// seniorityUnknown are the values that say "not known".
var seniorityUnknown = map[string]bool{"unknown": true, "n a": true, "na": true, "none": true, "not applicable": true}

// ParseSeniority maps a seniority value to enum Seniority. Empty means UNKNOWN. The enum's own
// names are read in any case ("c_level", "Vp"); otherwise the value is read as a title: "VP
// Sales", "Vice President", "Director of Marketing", "C-level", "CEO", "Founder & CEO" (OWNER),
// "Senior Engineer" (SENIOR), "Intern" (ENTRY). It reports false when no level can be read or
// the value names two ("Director, VP"): the row is then INVALID_VALUE rather than mislabelled.
func ParseSeniority(s string) (string, bool) {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) == 0 || seniorityUnknown[strings.Join(words, " ")] {
		return SeniorityUnknown, true
	}
	var levels, modifiers []string
	for i := 0; i < len(words); i++ {
		if i+1 < len(words) {
			if level, ok := seniorityPairs[[2]string{words[i], words[i+1]}]; ok {
				if level != "" {
					levels = addLevel(levels, level)
				}
				i++
				continue
			}
		}
		if level, ok := seniorityWords[words[i]]; ok {
			levels = addLevel(levels, level)
		} else if level, ok := seniorityModifiers[words[i]]; ok {
			modifiers = addLevel(modifiers, level)
		}
	}
	switch {
	case len(levels) == 0 && len(modifiers) == 1:
		return modifiers[0], true
	case len(levels) == 1:
		return levels[0], true
	case len(levels) == 2 && slices.Contains(levels, SeniorityOwner) && slices.Contains(levels, SeniorityCLevel):
		// A founder who is also the CEO (or president) is the owner.
		return SeniorityOwner, true
	}
	return "", false
}

func addLevel(levels []string, level string) []string {
	if slices.Contains(levels, level) {
		return levels
	}
	return append(levels, level)
}
