// Package model holds the GraphQL types: gqlgen generates most of them in models_gen.go; the ones
// here carry the ids that forced resolvers load relations by.
package model

import (
	"context"
	"time"
)

// Lead is the GraphQL Lead. Email, Phone and LinkedinURL are nil unless the caller's workspace
// bought the lead (the domain query masks them in SQL).
type Lead struct {
	ID                 string             `json:"id"`
	FirstName          string             `json:"firstName"`
	LastName           string             `json:"lastName"`
	Title              string             `json:"title"`
	Seniority          Seniority          `json:"seniority"`
	Department         string             `json:"department"`
	CompanyName        string             `json:"companyName"`
	CompanyDomain      string             `json:"companyDomain"`
	CompanySize        CompanySize        `json:"companySize"`
	Industry           string             `json:"industry"`
	Country            string             `json:"country"`
	Region             string             `json:"region"`
	City               string             `json:"city"`
	PriceCredits       int                `json:"priceCredits"`
	MaxBuyers          int                `json:"maxBuyers"`
	BuyersCount        int                `json:"buyersCount"`
	VerificationStatus VerificationStatus `json:"verificationStatus"`
	Email              *string            `json:"email,omitempty"`
	EmailPreview       string             `json:"emailPreview"`
	Phone              *string            `json:"phone,omitempty"`
	PhonePreview       string             `json:"phonePreview"`
	LinkedinURL        *string            `json:"linkedinUrl,omitempty"`
	CreatedAt          time.Time          `json:"createdAt"`
	VerifiedAt         *time.Time         `json:"verifiedAt,omitempty"`

	// Partner is filled from the request's partner loader before the lead is returned
	// (graph/relations.go); PurchasedByMyWorkspace comes from the lead's own query.
	Partner                *Partner `json:"partner"`
	PurchasedByMyWorkspace bool     `json:"purchasedByMyWorkspace"`

	// PartnerID is what Partner loads by.
	PartnerID string `json:"-"`
}

// LeadPurchase is one lead bought by a workspace; Lead.lead loads by LeadID.
type LeadPurchase struct {
	ID           string    `json:"id"`
	CreditsSpent int       `json:"creditsSpent"`
	CreatedAt    time.Time `json:"createdAt"`

	LeadID string `json:"-"`
}

// User is the signed-in user; workspaces and partners load on demand.
type User struct {
	ID              string `json:"id"`
	Email           string `json:"email"`
	IsPlatformAdmin bool   `json:"isPlatformAdmin"`
}

// LeadUpload is a partner's lead upload; LeadUpload.partner loads by PartnerID, and rejections
// pages by ID.
type LeadUpload struct {
	ID               string           `json:"id"`
	FileName         string           `json:"fileName"`
	FileSha256       string           `json:"fileSha256"`
	DryRun           bool             `json:"dryRun"`
	Status           LeadUploadStatus `json:"status"`
	RowsTotal        int              `json:"rowsTotal"`
	RowsProcessed    int              `json:"rowsProcessed"`
	AcceptedCount    int              `json:"acceptedCount"`
	DuplicateCount   int              `json:"duplicateCount"`
	InvalidCount     int              `json:"invalidCount"`
	CreatedAt        time.Time        `json:"createdAt"`
	StartedAt        *time.Time       `json:"startedAt,omitempty"`
	CompletedAt      *time.Time       `json:"completedAt,omitempty"`
	ErrorCode        *string          `json:"errorCode,omitempty"`
	ErrorMessage     *string          `json:"errorMessage,omitempty"`
	RejectionsCsvURL *string          `json:"rejectionsCsvUrl,omitempty"`

	PartnerID string `json:"-"`
}

// WorkspaceLead is a lead a workspace bought, as it works it; assignee loads by AssigneeID.
type WorkspaceLead struct {
	ID           string         `json:"id"`
	Lead         *Lead          `json:"lead"`
	Status       PipelineStatus `json:"status"`
	Tags         []string       `json:"tags"`
	CreditsSpent int            `json:"creditsSpent"`
	PurchasedAt  time.Time      `json:"purchasedAt"`
	UpdatedAt    time.Time      `json:"updatedAt"`
	DeletedAt    *time.Time     `json:"deletedAt,omitempty"`

	// AssigneeID is what assignee loads by; empty when nobody is assigned.
	AssigneeID string `json:"-"`
}

// LeadConnection is the GraphQL LeadConnection. Its totalCount is a resolver that calls
// CountFunc, so the leads are counted only when a query selects it.
type LeadConnection struct {
	Edges    []*LeadEdge `json:"edges"`
	PageInfo *PageInfo   `json:"pageInfo"`
	// CountFunc counts the list's leads; the resolver that made the page sets it.
	CountFunc func(ctx context.Context) (*TotalCount, error) `json:"-"`
}
